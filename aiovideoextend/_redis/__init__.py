"""The Redis backend (``[redis]`` extra): the shared rate limiter.

``client`` holds the plumbing (the client, checks, the Lua scripts of ``lua/``, error mapping,
lease renewal); ``limiter`` is the backend, published as :mod:`aiovideoextend.redis_limiter`.
"""
