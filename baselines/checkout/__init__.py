"""Adapters that drive a peer model's official code from a user-supplied checkout (Show-o, MaskGen, Meissonic,
TiTok, MAR, HART): :mod:`.repo` locates and verifies the checkout, :mod:`.base` holds what they share.

Nothing here imports torch or a checkout at import time; each adapter module imports its official modules when
it is constructed.
"""
