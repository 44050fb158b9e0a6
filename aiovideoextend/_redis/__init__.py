"""The Redis backends (``[redis]`` extra): the shared rate limiter and the shared batch journal.

``client`` holds what both use (the client, checks, the Lua scripts of ``lua/``, error mapping,
lease renewal); ``limiter`` and ``journal`` are the backends, published as
:mod:`aiovideoextend.redis_limiter` and :mod:`aiovideoextend.redis_journal`.
"""
