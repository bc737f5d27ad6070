import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sutazai.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Scope(_message.Message):
    __slots__ = ("agent_id", "session_id", "run_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session_id: str
    run_id: str
    def __init__(self, agent_id: _Optional[str] = ..., session_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ("id", "content", "metadata_json", "scope", "user_id", "collection", "document_id", "content_hash", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    content: str
    metadata_json: bytes
    scope: Scope
    user_id: str
    collection: str
    document_id: str
    content_hash: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., content: _Optional[str] = ..., metadata_json: _Optional[bytes] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., user_id: _Optional[str] = ..., collection: _Optional[str] = ..., document_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemoryInput(_message.Message):
    __slots__ = ("content", "metadata_json", "scope", "collection", "document_id")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    content: str
    metadata_json: bytes
    scope: Scope
    collection: str
    document_id: str
    def __init__(self, content: _Optional[str] = ..., metadata_json: _Optional[bytes] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., collection: _Optional[str] = ..., document_id: _Optional[str] = ...) -> None: ...

class AddMemoriesRequest(_message.Message):
    __slots__ = ("items", "infer", "extract_graph")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INFER_FIELD_NUMBER: _ClassVar[int]
    EXTRACT_GRAPH_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[MemoryInput]
    infer: bool
    extract_graph: bool
    def __init__(self, items: _Optional[_Iterable[_Union[MemoryInput, _Mapping]]] = ..., infer: _Optional[bool] = ..., extract_graph: _Optional[bool] = ...) -> None: ...

class GraphExtraction(_message.Message):
    __slots__ = ("entities", "relations", "skipped")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    entities: int
    relations: int
    skipped: str
    def __init__(self, entities: _Optional[int] = ..., relations: _Optional[int] = ..., skipped: _Optional[str] = ...) -> None: ...

class AddResult(_message.Message):
    __slots__ = ("memory", "event", "reason", "item", "graph")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    memory: Memory
    event: str
    reason: str
    item: int
    graph: GraphExtraction
    def __init__(self, memory: _Optional[_Union[Memory, _Mapping]] = ..., event: _Optional[str] = ..., reason: _Optional[str] = ..., item: _Optional[int] = ..., graph: _Optional[_Union[GraphExtraction, _Mapping]] = ...) -> None: ...

class AddMemoriesResponse(_message.Message):
    __slots__ = ("results", "model_calls", "backend")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AddResult]
    model_calls: int
    backend: str
    def __init__(self, results: _Optional[_Iterable[_Union[AddResult, _Mapping]]] = ..., model_calls: _Optional[int] = ..., backend: _Optional[str] = ...) -> None: ...

class SearchMemoriesRequest(_message.Message):
    __slots__ = ("query", "limit", "threshold", "scope", "metadata_json", "collection", "mode")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    threshold: float
    scope: Scope
    metadata_json: bytes
    collection: str
    mode: str
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ..., threshold: _Optional[float] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., metadata_json: _Optional[bytes] = ..., collection: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class ScoredMemory(_message.Message):
    __slots__ = ("memory", "score")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    memory: Memory
    score: float
    def __init__(self, memory: _Optional[_Union[Memory, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchMemoriesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoredMemory]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoredMemory, _Mapping]]] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("scope", "collection", "page")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    collection: str
    page: _common_pb2.PageRequest
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., collection: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListMemoriesResponse(_message.Message):
    __slots__ = ("memories", "page")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    page: _common_pb2.PageInfo
    def __init__(self, memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class GetMemoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UpdateMemoryRequest(_message.Message):
    __slots__ = ("id", "content", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    content: str
    metadata_json: bytes
    def __init__(self, id: _Optional[str] = ..., content: _Optional[str] = ..., metadata_json: _Optional[bytes] = ...) -> None: ...

class DeleteMemoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteMemoryResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class MemoryChange(_message.Message):
    __slots__ = ("memory_id", "event", "old_content", "new_content", "old_metadata_json", "new_metadata_json", "at")
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    OLD_CONTENT_FIELD_NUMBER: _ClassVar[int]
    NEW_CONTENT_FIELD_NUMBER: _ClassVar[int]
    OLD_METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    NEW_METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    memory_id: str
    event: str
    old_content: str
    new_content: str
    old_metadata_json: bytes
    new_metadata_json: bytes
    at: _timestamp_pb2.Timestamp
    def __init__(self, memory_id: _Optional[str] = ..., event: _Optional[str] = ..., old_content: _Optional[str] = ..., new_content: _Optional[str] = ..., old_metadata_json: _Optional[bytes] = ..., new_metadata_json: _Optional[bytes] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemoryHistoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class MemoryHistoryResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[MemoryChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[MemoryChange, _Mapping]]] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "count", "dimensions", "model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    dimensions: int
    model: str
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., dimensions: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("memories", "documents", "graph_entities", "graph_relations", "vector_backend", "graph_backend", "chunks", "embedding_model", "dimensions", "collections")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    GRAPH_RELATIONS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_BACKEND_FIELD_NUMBER: _ClassVar[int]
    GRAPH_BACKEND_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    memories: int
    documents: int
    graph_entities: int
    graph_relations: int
    vector_backend: str
    graph_backend: str
    chunks: int
    embedding_model: str
    dimensions: int
    collections: int
    def __init__(self, memories: _Optional[int] = ..., documents: _Optional[int] = ..., graph_entities: _Optional[int] = ..., graph_relations: _Optional[int] = ..., vector_backend: _Optional[str] = ..., graph_backend: _Optional[str] = ..., chunks: _Optional[int] = ..., embedding_model: _Optional[str] = ..., dimensions: _Optional[int] = ..., collections: _Optional[int] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "filename", "content_type", "size", "tags", "description", "chunks", "created_at", "status", "error", "progress", "chunks_total", "sha256", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    content_type: str
    size: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    description: str
    chunks: int
    created_at: _timestamp_pb2.Timestamp
    status: str
    error: str
    progress: float
    chunks_total: int
    sha256: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., chunks: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., progress: _Optional[float] = ..., chunks_total: _Optional[int] = ..., sha256: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadDocumentRequest(_message.Message):
    __slots__ = ("filename", "content_type", "content", "tags", "description")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    content: bytes
    tags: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., content: _Optional[bytes] = ..., tags: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("search", "page")
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    search: str
    page: _common_pb2.PageRequest
    def __init__(self, search: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents", "page")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    page: _common_pb2.PageInfo
    def __init__(self, documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("id", "include_content")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    include_content: bool
    def __init__(self, id: _Optional[str] = ..., include_content: _Optional[bool] = ...) -> None: ...

class GetDocumentResponse(_message.Message):
    __slots__ = ("document", "content")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    document: Document
    content: bytes
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., content: _Optional[bytes] = ...) -> None: ...

class DeleteDocumentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteDocumentResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SearchDocumentsRequest(_message.Message):
    __slots__ = ("query", "limit", "tags")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class DocumentHit(_message.Message):
    __slots__ = ("document", "chunk", "score", "chunk_index")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    document: Document
    chunk: str
    score: float
    chunk_index: int
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., chunk: _Optional[str] = ..., score: _Optional[float] = ..., chunk_index: _Optional[int] = ...) -> None: ...

class SearchDocumentsResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[DocumentHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[DocumentHit, _Mapping]]] = ...) -> None: ...

class DocumentStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DocumentStats(_message.Message):
    __slots__ = ("total_documents", "total_size", "total_chunks", "by_status", "by_content_type")
    class ByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByContentTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    BY_CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    total_documents: int
    total_size: int
    total_chunks: int
    by_status: _containers.ScalarMap[str, int]
    by_content_type: _containers.ScalarMap[str, int]
    def __init__(self, total_documents: _Optional[int] = ..., total_size: _Optional[int] = ..., total_chunks: _Optional[int] = ..., by_status: _Optional[_Mapping[str, int]] = ..., by_content_type: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("id", "name", "type", "properties_json", "scope", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: str
    properties_json: bytes
    scope: Scope
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., properties_json: _Optional[bytes] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Relation(_message.Message):
    __slots__ = ("id", "source_id", "target_id", "type", "properties_json", "valid_from", "valid_to", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    source_id: str
    target_id: str
    type: str
    properties_json: bytes
    valid_from: _timestamp_pb2.Timestamp
    valid_to: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., type: _Optional[str] = ..., properties_json: _Optional[bytes] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertEntityRequest(_message.Message):
    __slots__ = ("name", "type", "properties_json", "scope")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    properties_json: bytes
    scope: Scope
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., properties_json: _Optional[bytes] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class UpsertEntityResponse(_message.Message):
    __slots__ = ("entity", "created")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    created: bool
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class CreateRelationRequest(_message.Message):
    __slots__ = ("source_id", "target_id", "type", "properties_json", "valid_from", "valid_to")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    target_id: str
    type: str
    properties_json: bytes
    valid_from: _timestamp_pb2.Timestamp
    valid_to: _timestamp_pb2.Timestamp
    def __init__(self, source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., type: _Optional[str] = ..., properties_json: _Optional[bytes] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEntityRequest(_message.Message):
    __slots__ = ("id", "depth")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    depth: int
    def __init__(self, id: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class Subgraph(_message.Message):
    __slots__ = ("entity", "neighbours", "relations")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    entity: Entity
    neighbours: _containers.RepeatedCompositeFieldContainer[Entity]
    relations: _containers.RepeatedCompositeFieldContainer[Relation]
    def __init__(self, entity: _Optional[_Union[Entity, _Mapping]] = ..., neighbours: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., relations: _Optional[_Iterable[_Union[Relation, _Mapping]]] = ...) -> None: ...

class ShortestPathRequest(_message.Message):
    __slots__ = ("from_id", "to_id", "max_depth")
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    from_id: str
    to_id: str
    max_depth: int
    def __init__(self, from_id: _Optional[str] = ..., to_id: _Optional[str] = ..., max_depth: _Optional[int] = ...) -> None: ...

class PathResponse(_message.Message):
    __slots__ = ("found", "entities", "relations")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    relations: _containers.RepeatedCompositeFieldContainer[Relation]
    def __init__(self, found: _Optional[bool] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., relations: _Optional[_Iterable[_Union[Relation, _Mapping]]] = ...) -> None: ...

class ListEntitiesRequest(_message.Message):
    __slots__ = ("type", "name", "page")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    page: _common_pb2.PageRequest
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListEntitiesResponse(_message.Message):
    __slots__ = ("entities", "page")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    page: _common_pb2.PageInfo
    def __init__(self, entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class DeleteEntityRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteRelationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteGraphResponse(_message.Message):
    __slots__ = ("deleted", "relations_removed")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    relations_removed: int
    def __init__(self, deleted: _Optional[bool] = ..., relations_removed: _Optional[int] = ...) -> None: ...
