"""Worker-Sync configuration: schema (:mod:`config.model`) and loading (:mod:`config.loader`)."""

from config.loader import load_config, nodes_by_name, parse_config
from config.model import Config

__all__ = ["Config", "load_config", "nodes_by_name", "parse_config"]
