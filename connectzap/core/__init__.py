"""connectzap's vendor-neutral engine. Import public names from :mod:`connectzap` instead."""
