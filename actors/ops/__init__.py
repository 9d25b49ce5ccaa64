"""Operations commands' building blocks: backup archives, the S3 client, database dumps and the probe
table. Each module does one job; the CLI modules in actors.cli wire them together."""
