"""The definition layer: load, validate and compile workflow documents."""
