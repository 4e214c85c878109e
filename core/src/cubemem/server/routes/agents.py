"""Agents and their keys (operators)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cubemem.access import Agent
from cubemem.server.bodies import ERRORS, AgentChange, AgentKey, NewAgent
from cubemem.server.plumbing import OS, Operator

router = APIRouter()


@router.get("/v1/agents", tags=["access"], responses=ERRORS)
def agents(me: Operator, os_: OS) -> list[Agent]:
    return os_.access.agents()


@router.post("/v1/agents", status_code=201, tags=["access"], responses=ERRORS)
def create_agent(body: NewAgent, me: Operator, os_: OS) -> AgentKey:
    """A new agent; its key is in this response only."""
    agent, key = os_.access.create_agent(body.name, trust=body.trust, operator=body.operator)
    return AgentKey(agent=agent, key=key)


@router.patch("/v1/agents/{agent}", tags=["access"], responses=ERRORS)
def change_agent(agent: str, body: AgentChange, me: Operator, os_: OS) -> Agent:
    return os_.access.update_agent(
        agent,
        trust=body.trust,
        disabled=body.disabled,
        operator=body.operator,
        by=me.agent.name,
    )


@router.post("/v1/agents/{agent}/key", tags=["access"], responses=ERRORS)
def rotate(agent: str, me: Operator, os_: OS) -> AgentKey:
    """A new key for the agent (the old one stops working)."""
    key = os_.access.rotate_key(agent, by=me.agent.name)
    return AgentKey(agent=os_.access.agent(agent), key=key)


@router.delete("/v1/agents/{agent}", status_code=204, tags=["access"], responses=ERRORS)
def delete_agent(agent: str, me: Operator, os_: OS) -> Response:
    os_.access.delete_agent(agent, by=me.agent.name)
    return Response(status_code=204)
