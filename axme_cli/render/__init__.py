"""All terminal output: plain lines, JSON documents, errors. Heavy libraries load only when used."""
