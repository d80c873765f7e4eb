from axme_cli.cli import main

main()
