"""No admin registrations, by design.

Projects live in each tenant's schema, while the admin console runs on the public host with
the public schema (``leanvibe.admin_site.PlatformAdminSite`` refuses models of tenant-only
apps). A tenant's projects are managed on its own site and through its API.
"""
