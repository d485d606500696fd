from flowledger.cli import entry

entry()
