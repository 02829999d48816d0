"""Restoring real images: reading and writing image files, tiled restoration of large images."""
