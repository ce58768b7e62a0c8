"""Demo data for `flask seed`: realistic users and posts, loaded in bulk."""
