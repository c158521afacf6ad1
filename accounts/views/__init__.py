"""Web pages of the accounts app, one module per area."""
