from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class PageInfo(_message.Message):
    __slots__ = ("total", "limit", "offset")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    total: int
    limit: int
    offset: int
    def __init__(self, total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("name", "healthy", "latency_ms", "error", "target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    healthy: bool
    latency_ms: float
    error: str
    target: str
    def __init__(self, name: _Optional[str] = ..., healthy: _Optional[bool] = ..., latency_ms: _Optional[float] = ..., error: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class GetDependenciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDependenciesResponse(_message.Message):
    __slots__ = ("service", "version", "uptime_s", "dependencies")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    uptime_s: float
    dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("service", "exposition")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    EXPOSITION_FIELD_NUMBER: _ClassVar[int]
    service: str
    exposition: bytes
    def __init__(self, service: _Optional[str] = ..., exposition: _Optional[bytes] = ...) -> None: ...

class Breaker(_message.Message):
    __slots__ = ("name", "kind", "snapshot_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    snapshot_json: bytes
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., snapshot_json: _Optional[bytes] = ...) -> None: ...

class GetBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBreakersResponse(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    def __init__(self, breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ...) -> None: ...

class ResetBreakersRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResetBreakersResponse(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reset: _Optional[_Iterable[str]] = ...) -> None: ...

class MetadataEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class StreamedCall(_message.Message):
    __slots__ = ("id", "method", "request", "metadata", "timeout_s", "cancel")
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    method: str
    request: bytes
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    timeout_s: float
    cancel: bool
    def __init__(self, id: _Optional[int] = ..., method: _Optional[str] = ..., request: _Optional[bytes] = ..., metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ..., timeout_s: _Optional[float] = ..., cancel: _Optional[bool] = ...) -> None: ...

class StreamedReply(_message.Message):
    __slots__ = ("id", "code", "response", "details", "trailing_metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    TRAILING_METADATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    response: bytes
    details: str
    trailing_metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., response: _Optional[bytes] = ..., details: _Optional[str] = ..., trailing_metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ...) -> None: ...
