"""``python -m aiovideoextend.testing``: serve the emulator."""

from ._serve import main

raise SystemExit(main())
