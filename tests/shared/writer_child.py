"""One agent process for the concurrency test: ``n`` adds over HTTP, one request each, then
the acknowledged ids on stdout as JSON."""

from __future__ import annotations

import json
import sys

from cubemem.remote import RemoteMemoryOS

url, key, cube_name, n, who = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
with RemoteMemoryOS(url, key) as memory:
    cube = memory.open_cube(cube_name)
    ids = [cube.add(f"{who} wrote note {i}", wait=False) for i in range(n)]
print(json.dumps(ids))
