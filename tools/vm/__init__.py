"""The project's VM test tier runner (see __main__.py and DEVELOPERS.md "VM tier")."""
