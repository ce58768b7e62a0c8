"""The API's resources, one package each, all of the same shape (docs/adding-a-resource.md).

The list of resources the app serves is in webapp/__init__.py.
"""
