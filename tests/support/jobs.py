"""Volt MX admin-console jobs as the tests send them."""

from __future__ import annotations

from typing import Any

# Volt MX's "Create a Job" sample request, as its admin-console API documents it.
SAMPLE_JOB: dict[str, Any] = {
    "jobId": 2,
    "jobName": "testjob1",
    "jobFrequency": "19 0 * * * ? *",
    "description": "Job for testjob2",
    "jobServiceInfo": {
        "version": "1.0",
        "serviceType": "intSer",
        "serviceName": "jsonservices",
        "objectName": "",
        "operationName": "metadatajson",
        "requestheaderMap": {},
        "serviceExecutionType": "SERVER_URL",
        "postData": "{}",
        "operationSecurityLevel": "public",
    },
    "jobStatus": "Active",
    "historyStrategy": "OFF",
    "retentionPeriod": "30",
    "jobFrequencyInfo": {"frequencyType": 1, "minuteValues": [0], "hourValues": [1]},
}
