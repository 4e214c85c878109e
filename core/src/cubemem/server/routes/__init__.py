"""The REST routes, one ``APIRouter`` per tag; ``cubemem.server.app.create_app`` includes
them all."""

from cubemem.server.routes import access, agents, cubes, graph, keys, memories, review, service

ROUTERS = [
    service.router,
    cubes.router,
    memories.router,
    graph.router,
    keys.router,
    review.router,
    access.router,
    agents.router,
]
