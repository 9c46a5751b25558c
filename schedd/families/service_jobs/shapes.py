"""Service jobs on the wire (Volt MX's admin-console jobs and its result envelope): the job
document, its runs and the limits on its fields, each declared once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.policy import HISTORY_STRATEGIES
from schedd.shapes import END, REF, Fault, LocalTime, Model, Reason, Verbatim, digits, extra, one_of

SERVICE_TYPES = ("intSer", "objSer", "orchSer")
EXECUTION_TYPE = "SERVER_URL"
JOB_STATUSES = ("Active", "Inactive")
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_TEXT = 200
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 50, 256, 8192
RETENTION_RANGE = (1, 3650)

NO_CONTROL = rf"^[^\x00-\x1f\x7f]*{END}"
"""Text without control characters."""
LINES = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*{END}"
"""Text without control characters but tabs and line breaks."""
NAME = r"^(?![\s\S]*[\x00-\x1f\x7f])\s*\S"
"""Text without control characters, not only spaces."""
OPERATION = rf"^[A-Za-z0-9._~/-]{{1,200}}{END}"

JobStatus = Annotated[str, one_of(JOB_STATUSES)]
ShortText = Annotated[str, Meta(max_length=MAX_TEXT, pattern=NO_CONTROL)] | None
CONTROL = "must not contain control characters"
NAME_LENGTH = f"must be 1-{MAX_NAME} characters, not only spaces"
_WHOLE_DAYS = f"must be a whole number of days ({RETENTION_RANGE[0]}-{RETENTION_RANGE[1]})"


def _name_form(fault: Fault) -> str:
    return NAME_LENGTH if not str(fault.value).strip() else CONTROL


def _text_reasons(limit: int) -> Mapping[str, str]:
    return {"type": "must be a string", "length": f"must be at most {limit} characters", "pattern": CONTROL}


def _one_of_reason(options: tuple[str, ...]) -> str:
    return f"must be one of {', '.join(options)}"


class VoltResult(Model, kw_only=True):
    """Volt MX's envelope of mutations and errors."""

    status: Literal["SUCCESS", "FAIL"]
    result: Any
    message: str | None
    token: None = None


class FieldFault(Model, kw_only=True):
    field: str
    reason: str


class JobSummary(Model, kw_only=True):
    jobId: int
    jobName: str
    description: str | None
    cronExpression: str | None
    updatedUser: str | None
    updatedDate: LocalTime
    jobStatus: JobStatus
    jobHistoryTotal: int
    jobHistorySuccessCount: int
    jobHistoryFailCount: int
    jobHistorySucPercentage: int
    jobHistoryFailPercentage: int
    jobLastRunStatus: str | None
    jobNextRunTime: LocalTime


class JobServiceInfo(Verbatim, kw_only=True):
    """`jobServiceInfo`: GET shows every key, null where the job was created without it.

    A request's is checked in Volt MX's order (`CHECK_ORDER`); the family then looks the
    service up in the config, keeps `operationName` under the service's URL, checks the
    header names and parses `postData` text as JSON."""

    REASONS: ClassVar[Mapping[str, Reason]] = {
        "serviceName": {"required": "is required"},
        "serviceExecutionType": f"must be {EXECUTION_TYPE!r}",
        "serviceType": _one_of_reason(SERVICE_TYPES),
        "operationName": {"required": "is required", "type": "must be a string",
                          "pattern": lambda fault: f"operationName {fault.value!r}: must be 1-200 characters of "
                                                   "A-Z a-z 0-9 . _ ~ / -"},
        "requestheaderMap": {
            "type": "must be an object of header names to strings",
            "length": f"must hold at most {MAX_HEADERS} headers",
            "key.length": f"header names must be at most {MAX_HEADER_NAME} characters",
            "value.type": lambda fault: f"header {fault.key!r}: the value must be a string",
            "value.length": lambda fault: f"header {fault.key!r}: the value must be at most {MAX_HEADER_VALUE} "
                                          "characters"},
        "postData": "must be a JSON string or an object",
        "version": _text_reasons(MAX_TEXT), "objectName": _text_reasons(MAX_TEXT),
        "operationSecurityLevel": _text_reasons(MAX_TEXT),
    }
    CHECK_ORDER: ClassVar[tuple[str, ...]] = (
        "serviceName", "serviceExecutionType", "serviceType", "operationName", "requestheaderMap", "postData",
        "version", "objectName", "operationSecurityLevel")
    BLANK: ClassVar[frozenset[str]] = frozenset({"serviceName"})

    version: ShortText | UnsetType = UNSET
    serviceType: Annotated[str, one_of(SERVICE_TYPES)]
    serviceName: Annotated[str, Meta(description="a [services.NAME] of the config")]
    objectName: ShortText | UnsetType = UNSET
    operationName: Annotated[str, Meta(pattern=OPERATION)]
    requestheaderMap: Annotated[dict[Annotated[str, Meta(max_length=MAX_HEADER_NAME)],
                                     Annotated[str, Meta(max_length=MAX_HEADER_VALUE)]],
                                Meta(max_length=MAX_HEADERS)] | None | UnsetType = UNSET
    serviceExecutionType: Annotated[str, one_of([EXECUTION_TYPE])]
    postData: Annotated[str | dict[str, Any] | None,
                        Meta(description="JSON text or object, POSTed to the service")] | UnsetType = UNSET
    operationSecurityLevel: ShortText | UnsetType = UNSET


class JobFrequencyInfo(Verbatim, kw_only=True):
    frequencyType: Annotated[Literal[1, 2, 3, 4], Meta(description="1 hour-, 2 day-, 3 week-, 4 month-based")]
    minuteValues: list[int] | UnsetType = UNSET
    hourValues: list[int] | UnsetType = UNSET
    dayValues: list[int] | UnsetType = UNSET
    dateValues: list[int | str] | UnsetType = UNSET


class Job(Verbatim, kw_only=True):
    """A job as GET answers it and as POST and PUT take it (PUT needs `jobId`).

    A request is checked in Volt MX's order (`CHECK_ORDER`; `jobId` is the family's, and
    the answer's own fields are not read); the family parses the cron, derives it from
    `jobFrequencyInfo` and checks `jobServiceInfo` by its own model."""

    REASONS: ClassVar[Mapping[str, Reason]] = {
        "jobName": {"required": "is required", "type": "must be a string", "length": NAME_LENGTH,
                    "pattern": _name_form},
        "description": _text_reasons(MAX_DESCRIPTION),
        "jobFrequency": "must be a string holding a cron expression",
        "jobFrequencyInfo": "must be an object",
        "jobServiceInfo": {"required": "is required", "type": "must be an object"},
        "jobStatus": _one_of_reason(JOB_STATUSES),
        "historyStrategy": _one_of_reason(HISTORY_STRATEGIES),
        "retentionPeriod": {
            "type": _WHOLE_DAYS, "pattern": _WHOLE_DAYS,
            "range": lambda fault: f"{fault.value} is out of range {RETENTION_RANGE[0]}-{RETENTION_RANGE[1]} days"},
    }
    CHECK_ORDER: ClassVar[tuple[str, ...]] = (
        "jobName", "description", "jobFrequency", "jobFrequencyInfo", "jobServiceInfo", "jobStatus",
        "historyStrategy", "retentionPeriod")
    BLANK: ClassVar[frozenset[str]] = frozenset({"jobName", "jobFrequency", "jobStatus", "historyStrategy",
                                                 "retentionPeriod"})

    jobId: int | UnsetType = UNSET
    jobName: Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=NAME)]
    jobFrequency: Annotated[str | None, Meta(description="cron")] | UnsetType = UNSET
    # As stored: the keys of JobServiceInfo, values as the client sent them.
    jobServiceInfo: Annotated[dict[str, Any], extra(**{"$ref": REF.format(name="JobServiceInfo")})]
    jobStatus: JobStatus | UnsetType = UNSET
    historyStrategy: Annotated[str, one_of(HISTORY_STRATEGIES)] | UnsetType = UNSET
    retentionPeriod: Annotated[int, Meta(ge=RETENTION_RANGE[0], le=RETENTION_RANGE[1], description="days")] \
        | Annotated[str, digits(9)] | UnsetType = UNSET
    # Kept as sent beside a cron, or derived from it.
    jobFrequencyInfo: Annotated[dict[str, Any] | None, extra(oneOf=[
        {"$ref": REF.format(name="JobFrequencyInfo")}, {"type": "null"}])] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION, pattern=LINES)] | None | UnsetType = UNSET
    jobNextRunTime: LocalTime | UnsetType = UNSET
    updatedUser: str | None | UnsetType = UNSET
    updatedDate: LocalTime | UnsetType = UNSET


class JobRun(Model, kw_only=True):
    jobRunId: int
    jobStartTime: LocalTime
    jobEndTime: LocalTime
    jobDuration: Annotated[int, Meta(description="milliseconds")]
    executionFrequency: str | None
    executionStatus: Annotated[str, extra(enum=["Success", "Fail", "Running", "Skipped", "Interrupted",
                                                  "Canceled"])]
    completeHistory: bool


class JobRunDetail(JobRun, kw_only=True):
    triggerType: str
    requestPayload: str | None
    responseStatus: int | None
    responseBody: str | None
    errorMessage: str | None
    skipReason: str | None
    windowId: int | None
