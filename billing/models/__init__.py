"""Billing data; every table lives in the public schema (billing is a shared app only)."""
