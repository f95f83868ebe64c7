"""The error bodies the API sends, and how the published OpenAPI schema describes them.

Every error answer is ``{"detail": ...}``: a sentence for most (401, 404, 409, 413, 429, 503 and
many 422s), or a list of problems when a request fails validation (as the app's handler writes
pydantic's errors: where and what, never the input) or a training config does (field and
message). FastAPI documents only its own validation body (``detail``: an array) and only for 422;
``document_errors`` makes every error response in the schema point at ``ErrorOut`` instead, and
lists the errors that whole families of routes send without declaring them: 400 for a body that
cannot be read at all (bytes that are not text, or broken multipart: FastAPI and Starlette answer
before any validation; text that is not JSON is a 422), 413 for a body over its limit, 404 for an id no row has."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: the part of the request, then the path into it.")
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="pydantic's kind of error, e.g. missing, less_than_equal, json_invalid.")


class ConfigProblem(BaseModel):
    field: str = Field(description="The training config field, dotted (``mix.quickdraw``), or ``config``.")
    msg: str = Field(description="What is wrong, in words.")


class ErrorOut(BaseModel):
    detail: str | list[ValidationProblem] | list[ConfigProblem] = Field(
        description="What went wrong: a sentence, or the list of problems of a request that failed validation "
                    "(or, for a training job, of its config).")


#: Errors that routes send without declaring them, by what the operation has.
BODY_UNREADABLE = {"description": "The request body cannot be read: bytes that are not text, or broken multipart "
                                  "form data."}
BODY_TOO_LARGE = {"description": "The request body is over its limit (sent as soon as it is)."}
NO_SUCH_ID = {"description": "Nothing has this id."}


def _error_schemas() -> dict[str, Any]:
    schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "ErrorOut": schema}


def describe_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place (and return it) so that every 4xx and 5xx response
    has ``ErrorOut`` as its JSON body, operations with a body list 400 and 413, and operations
    with a path parameter list 404. Running it twice changes nothing more."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_error_schemas())
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unused
        schemas.pop(name, None)
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", dict(BODY_UNREADABLE))
                responses.setdefault("413", dict(BODY_TOO_LARGE))
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                responses.setdefault("404", dict(NO_SUCH_ID))
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    return spec


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) describe the error bodies
    the routes really send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return describe_errors(generate())

    app.openapi = openapi  # type: ignore[method-assign]
