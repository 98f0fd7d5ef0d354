"""OpenAI-shaped API errors: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.responses import JSONResponse, Response

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    415: "UnsupportedMediaTypeError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    """An error answered to the client with ``status`` and an OpenAI error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, object]:
        return error_body(self.status, self.message, param=self.param, code=self.code)

    def response(self) -> Response:
        return error_response(self.status, self.body())


class _AsciiJSONResponse(JSONResponse):
    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(status: int, body: dict[str, object],
                   headers: dict[str, str] | None = None) -> Response:
    """The JSON response of an error body, ASCII-escaped (messages may quote any input)."""
    return _AsciiJSONResponse(body, status_code=status, headers=headers)


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, object]:
    kind = _ERROR_TYPES.get(status)
    if kind is None:
        kind = HTTPStatus(status).phrase.replace(" ", "") + "Error"
    return {"error": {"message": message, "type": kind, "param": param,
                      "code": code if code is not None else status}}


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param, code="invalid_request_error")


def model_not_found(name: str) -> APIError:
    return APIError(404, f"The model `{name}` does not exist.", param="model",
                    code="model_not_found")


def server_busy(message: str) -> APIError:
    return APIError(503, message, code="server_busy")
