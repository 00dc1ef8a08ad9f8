"""Pydantic models of the documents Beacon accepts and issues."""
