"""The tokens resource: bearer tokens for the API (sign in, sign out), and the authenticator."""
