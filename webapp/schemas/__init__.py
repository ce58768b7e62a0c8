"""marshmallow schemas: input validation and output shape."""
