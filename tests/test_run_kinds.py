"""Every run request has exactly one run kind, and a door's subclass of a request runs as that request's kind."""

from __future__ import annotations

import typing

from llmmixer.orchestrator.kinds import KINDS, kind_for
from llmmixer.orchestrator.requests import AgentRequest, AskRequest, CommandRequest, RunRequest
from llmmixer.orchestrator.results import RUN_RESULT
from llmmixer.orchestrator.web.api import WebAskRequest


def test_each_request_model_has_its_kind_and_each_kind_a_result() -> None:
    requests = typing.get_args(RunRequest)
    kind_for(AskRequest(prompt="hi"))  # loads every kind module
    assert set(KINDS) == set(requests)
    names = {KINDS[request].name for request in requests}
    assert names == {"ask", "command", "agent"}
    for name in names:  # the kind's name is its result's discriminator
        assert RUN_RESULT.validate_python({"kind": name}).kind == name


def test_requests_dispatch_by_type_including_a_doors_subclass() -> None:
    assert kind_for(AskRequest(prompt="hi")).name == "ask"
    assert kind_for(WebAskRequest(prompt="hi")).name == "ask"
    assert kind_for(CommandRequest(command="true")).name == "command"
    assert kind_for(AgentRequest(task="t", check="true", agents=["claude"])).name == "agent"
