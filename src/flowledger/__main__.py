from flowledger.cli.app import main

main()
