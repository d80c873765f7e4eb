"""The one HTTP client of the CLI (httpx); transport and HTTP errors are mapped to CliError here."""
