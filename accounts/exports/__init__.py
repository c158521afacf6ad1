"""Self-service data export: an owner asks for an archive of all of the organisation's data,
a worker writes it part by part (``registry``: each app contributes its parts), a signed link
downloads it for 24 hours, and the archive is deleted after 7 days."""
