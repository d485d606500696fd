from flowledger.cli import main

main()
