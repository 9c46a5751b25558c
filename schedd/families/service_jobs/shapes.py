"""Service jobs on the wire (Volt MX's admin-console jobs and its result envelope): the job
document, its runs and the limits on its fields, each declared once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.shapes import REF, LocalTime, Model, Strategy, Verbatim, extra

SERVICE_TYPES = ("intSer", "objSer", "orchSer")
EXECUTION_TYPE = "SERVER_URL"
JOB_STATUSES = ("Active", "Inactive")
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_TEXT = 200
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 50, 256, 8192

JobStatus = Annotated[str, extra(enum=list(JOB_STATUSES))]
ShortText = Annotated[str, Meta(max_length=MAX_TEXT)] | None


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
    """`jobServiceInfo`: GET shows every key, null where the job was created without it."""

    version: ShortText | UnsetType = UNSET
    serviceType: Annotated[str, extra(enum=list(SERVICE_TYPES))] | UnsetType = UNSET
    serviceName: Annotated[str, Meta(description="a [services.NAME] of the config")]
    objectName: ShortText | UnsetType = UNSET
    operationName: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._~/-]{1,200}$")]
    requestheaderMap: Annotated[dict[str, Annotated[str, Meta(max_length=MAX_HEADER_VALUE)]],
                                Meta(max_length=MAX_HEADERS)] | UnsetType = UNSET
    serviceExecutionType: Annotated[str, extra(enum=[EXECUTION_TYPE])]
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
    """A job as GET answers it and as POST and PUT take it (PUT needs `jobId`)."""

    jobId: int | UnsetType = UNSET
    jobName: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
    jobFrequency: Annotated[str | None, Meta(description="cron")] | UnsetType = UNSET
    # As stored: the keys of JobServiceInfo, values as the client sent them.
    jobServiceInfo: Annotated[dict[str, Any], extra(**{"$ref": REF.format(name="JobServiceInfo")})]
    jobStatus: JobStatus | UnsetType = UNSET
    historyStrategy: Strategy | UnsetType = UNSET
    retentionPeriod: Annotated[str | int, Meta(description="days, 1-3650")] | UnsetType = UNSET
    # Kept as sent beside a cron, or derived from it.
    jobFrequencyInfo: Annotated[dict[str, Any] | None, extra(oneOf=[
        {"$ref": REF.format(name="JobFrequencyInfo")}, {"type": "null"}])] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] | None | UnsetType = UNSET
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
