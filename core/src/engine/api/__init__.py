"""The Docker Engine API over aiohttp: routes parse and shape, subsystems do the work."""
