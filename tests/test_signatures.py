"""Failure signatures: published Databricks, Spark and Python error texts that must group together,
and texts with different causes that must not; plus the API's promises (None, titles, stability)."""

from __future__ import annotations

import random

import pytest

from extractor.analytics.signatures import SIGNATURE_VERSION, Signature, sign
from extractor.dev.simulator._errors import draw_failure, family_names

# --- published texts (each cites the issue it was copied from) ----------------------------------

# apache/dolphinscheduler#14760
TABLE_NOT_FOUND_DOLPHIN = (
    "2023-08-17 10:07:52 INFO  ApplicationMaster:54 - Final app status: FAILED, exitCode: 15, "
    "(reason: User class threw exception: org.apache.spark.sql.AnalysisException: Table or view "
    "not found: test123; line 1 pos 21\n"
    "\tat org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.failAnalysis(package.scala:47)\n"
    "\tat org.apache.spark.sql.catalyst.analysis.Analyzer$ResolveRelations$.resolveRelation(Analyzer.scala:685)"
)
# DTStack/Taier#1009
TABLE_NOT_FOUND_TAIER = (
    "User class threw exception: org.apache.spark.sql.AnalysisException: Table or view not found: "
    "test_t1; line 1 pos 1"
)
# sparklyr/sparklyr#2831
TABLE_NOT_FOUND_SPARKLYR = (
    "Error: org.apache.spark.sql.AnalysisException: Table or view not found: "
    "rosetta.train_for_models; line 2 pos 5\n"
    "\tat org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.failAnalysis(package.scala:47)"
)
# h2oai/sparkling-water#1238
TABLE_NOT_FOUND_H2O = (
    "Error : org.apache.spark.sql.AnalysisException: Table or view not found: hf; line 2 pos 5\n"
    "\tat org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.failAnalysis(package.scala:47)"
)
# Qbeast-io/qbeast-spark#441
CONCURRENT_APPEND_QBEAST = (
    "io.delta.exceptions.ConcurrentAppendException: Files were added to the root of the table by a "
    "concurrent update. Please try the operation again.\n"
    'Conflicting commit: {"timestamp":1728639379364,"operation":"WRITE","operationParameters":'
    '{"mode":Append},"readVersion":4,"isolationLevel":"Serializable","isBlindAppend":true,'
    '"txnId":"27fd66c8-5027-4e2e-b5e7-5611887b2f73"}\n'
    "Refer to https://docs.delta.io/latest/concurrency-control.html for more details.\n"
    "| at org.apache.spark.sql.delta.DeltaErrorsBase.concurrentAppendException(DeltaErrors.scala:2300)\n"
    "| at org.apache.spark.sql.delta.DeltaErrors$.concurrentAppendException(DeltaErrors.scala:3203)"
)
# databricks-industry-solutions/pixels#25
CONCURRENT_APPEND_PIXELS = (
    "ConcurrentAppendException: Files were added to the root of the table by a concurrent update. "
    "Please try the operation again.\n"
    'Conflicting commit: {"timestamp":1698900146066,"userId":"5215232244814299","userName":'
    '"jingting.lu@databricks.com","operation":"CREATE OR REPLACE TABLE AS SELECT",'
    '"clusterId":"1102-043119-bqziscvh","readVersion":42,"isolationLevel":"WriteSerializable"}'
)
# flyway/flyway-community-db-support#116
CONCURRENT_APPEND_FLYWAY = (
    "Operation failed with error: [org.apache.hive.service.cli.HiveSQLException: Error running "
    "query: [DELTA_CONCURRENT_APPEND] io.delta.exceptions.ConcurrentAppendException: "
    "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to the root of the "
    "table by a concurrent update. Please try the operation again."
)
# aws/amazon-sagemaker-examples#4736
UNRESOLVED_SAGEMAKER = (
    "OperatorCustomerError: AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or "
    "function parameter with name `emp`.`var`.`rate` cannot be resolved. Did you mean one of the "
    "following? [`emp.var.rate`, `marital`, `age`, `campaign`, `contact`].; 'Aggregate "
    "[map(cast(count as string), cast(count(age#20798L) as string))]"
)
# databrickslabs/overwatch#1063
UNRESOLVED_OVERWATCH = (
    "FAILED: 3018-Gold_Warehouse Module: Failed\n\n"
    "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name "
    "`warehouse_state` cannot be resolved. Did you mean one of the following? [`warehouse_name`, "
    "`warehouse_type`, `warehouse_id`, `requestId`, `workspace_name`];\n"
    "'Project [warehouse_id#8147147, warehouse_name#8147148, organization_id#8147141]"
)
# dbt-labs/coalesce-2022-python-databricks#2 (two models of the same run)
UNRESOLVED_DBT_CUSTOMERS = (
    "Runtime Error in model stg_customers (models/staging/stg_customers.sql)\n"
    "  [UNRESOLVED_COLUMN] A column or function parameter with name `id` cannot be resolved. Did "
    "you mean one of the following? [`source`.`customer_id`, `source`.`lifetime_spend`, "
    "`source`.`customer_name`]; line 29 pos 8"
)
UNRESOLVED_DBT_ORDERS = (
    "Runtime Error in model stg_orders (models/staging/stg_orders.sql)\n"
    "  [UNRESOLVED_COLUMN] A column or function parameter with name `id` cannot be resolved. Did "
    "you mean one of the following? [`source`.`order_id`, `source`.`tax_paid`, `source`.`subtotal`, "
    "`source`.`customer_id`, `source`.`location_id`]; line 29 pos 8"
)
# undeadpixel/reinvent-randomized#1
STAGE_OOM_REINVENT = (
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 69 in stage 95.0 "
    "failed 1 times, most recent failure: Lost task 69.0 in stage 95.0 (TID 916, localhost, "
    "executor driver): java.lang.OutOfMemoryError: Java heap space\n\nDriver stacktrace:\n"
    "        at org.apache.spark.scheduler.DAGScheduler.org$apache$spark$scheduler$DAGScheduler$$failJobAndIndependentStages(DAGScheduler.scala:1889)"
)
# zinggAI/zingg#871
STAGE_OOM_ZINGG = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 2407.0 "
    "failed 1 times, most recent failure: Lost task 1.0 in stage 2407.0 (TID 2537) (a57b285e3f39 "
    "executor driver): java.lang.OutOfMemoryError: Java heap space\n"
    "        at org.apache.spark.util.collection.unsafe.sort.UnsafeSorterSpillReader.<init>(UnsafeSorterSpillReader.java:50)"
)
# perwendel/spark#1289
STAGE_NPE_PERWENDEL = (
    "Error-org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage "
    "150.0 failed 4 times, most recent failure: Lost task 1.3 in stage 150.0 (TID 426) "
    "(172.30.123.114 executor 6): java.lang.NullPointerException"
)
# sparklyr/sparklyr#200
STAGE_NPE_SPARKLYR = (
    "Error: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 "
    "failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0, localhost): "
    "java.lang.NullPointerException\n\tat java.lang.ProcessBuilder.start(ProcessBuilder.java:1012)"
)
# googlecolab/colabtools#1222
STAGE_IO_COLAB = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 0.0 failed "
    "1 times, most recent failure: Lost task 1.0 in stage 0.0 (TID 1, localhost, executor driver): "
    "org.apache.hadoop.fs.FSError: java.io.IOException: Operation canceled"
)
# spark-jobserver/spark-jobserver#149
STAGE_EXECUTOR_LOST = (
    "Job aborted due to stage failure: Task 0 in stage 0.0 failed 4 times, most recent failure: "
    "Lost task 0.3 in stage 0.0 (TID 7, kafka.cds.softlayer.com): ExecutorLostFailure (executor 0 "
    "lost)\nDriver stacktrace:"
)
# munhouiani/Deep-Packet#1 (the issue's own line break inside "9.0" kept)
STAGE_PYTHON_CRASH = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 9.0 failed "
    "1 times, most recent failure: Lost task 1.0 in stage 9.\n0 (TID 408, localhost, executor "
    "driver): org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)\n"
    "        at org.apache.spark.api.python.BasePythonRunner$ReaderIterator$$anonfun$3.applyOrElse(PythonRunner.scala:490)"
)
# databrickslabs/overwatch#1165
STAGE_FETCH_FAILED = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: ShuffleMapStage 6518 "
    "(mapPartitionsInternal at PhotonExec.scala:482) has failed the maximum allowable number of "
    "times: 4. Most recent failure reason:\norg.apache.spark.shuffle.FetchFailedException\n"
    "\tat org.apache.spark.errors.SparkCoreErrors$.fetchFailedError(SparkCoreErrors.scala:440)\n"
    "\tat org.apache.spark.storage.ShuffleBlockFetcherIterator.throwFetchFailedException(ShuffleBlockFetcherIterator.scala:1285)"
)
# RTIInternational/teehr#671
STAGE_SNAPPY_TEEHR = (
    "Py4JJavaError: An error occurred while calling o126.save.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 9.0 "
    "failed 1 times, most recent failure: Lost task 0.0 in stage 9.0 (TID 9) (localhost executor "
    "driver): scala.MatchError: java.lang.UnsatisfiedLinkError: "
    "/tmp/snappy-1.1.10-b34adc92-873d-49f9-bddb-237a6757d27f-libsnappyjava.so: /tmp/"
)
# IIIS-Li-Group/OpenFE#44
DRIVER_RESTART_OPENFE = (
    "The spark driver has stopped unexpectedly and is restarting. Your notebook will be "
    "automatically reattached.\n"
    "at com.databricks.spark.chauffeur.Chauffeur.onDriverStateChange(Chauffeur.scala:1354)"
)
# databrickslabs/ucx#2398
DRIVER_RESTART_UCX = (
    "The spark driver has stopped unexpectedly and is restarting. Your notebook will be "
    "automatically reattached.\n"
    "\tat com.databricks.spark.chauffeur.Chauffeur.onDriverStateChange(Chauffeur.scala:1478)\n"
    "\tat com.databricks.spark.chauffeur.Chauffeur.$anonfun$driverStateOpt$1(Chauffeur.scala:303)"
)
# city96/ComfyUI_NetDist#36
HTTP_503_COMFY = (
    "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
    "http://127.0.0.1:8288/queue"
)
# HR/github-clone#7
HTTP_503_ENSEMBL = (
    '  File "E:\\python\\lib\\site-packages\\requests\\models.py", line 943, in raise_for_status\n'
    "    raise HTTPError(http_error_msg, response=self)\n"
    "requests.exceptions.HTTPError: 503 Server Error: Server Temporarily Unavailable for url: "
    "http://grcm39.rest.ensembl.org/variation/Mus_musculus?pops=1"
)
# ykdojo/twitterbotsample#2
VALUE_INT_EMPTY = "ValueError: invalid literal for int() with base 10: ''"
# qiuqingyu/CNKICrawler#3
VALUE_INT_CNKI = (
    "Traceback (most recent call last):\n"
    '  File "G:/mycode/python/CNKICrawler/spider_main.py", line 20, in <module>\n'
    "    currentpage = cf.getint('base', 'currentpage')\n"
    '  File "C:\\Users\\AppData\\Local\\Programs\\Python\\Python35\\lib\\configparser.py", line 816, in getint\n'
    "    fallback=fallback, **kwargs)\n"
    '  File "C:\\Users\\AppData\\Local\\Programs\\Python\\Python35\\lib\\configparser.py", line 800, in _get\n'
    "    return conv(self.get(section, option, **kwargs))\n"
    "ValueError: invalid literal for int() with base 10: '70LL'"
)
# threaTrace-detector/threaTrace#10
VALUE_INT_BYTES = (
    "Traceback (most recent call last):\n"
    '  File "train_streamspot.py", line 591, in <module>\n'
    "    main()\n"
    '  File "train_streamspot.py", line 528, in main\n'
    "    node_num = int(p.stdout.readline())\n"
    "ValueError: invalid literal for int() with base 10: b''"
)
# kegsmr/sc4mp-client#31
VALUE_INT_HEX = (
    "invalid literal for int() with base 10: 'a928942ff07b4508a027d2519a640b0e'\n\n"
    "Traceback (most recent call last):\n"
    '  File "sc4mpclient.py", line 1923, in run\n'
    '  File "sc4mpclient.py", line 2134, in load\n'
    '  File "sc4mpclient.py", line 2241, in receive_or_cached\n'
    "ValueError: invalid literal for int() with base 10: 'a928942ff07b4508a027d2519a640b0e'"
)
# featurestorebook/mlfs-book#11
MODULE_PSUTIL = "ModuleNotFoundError: No module named 'psutil'"
# ibis-project/ibis#9038
PERMISSION_IBIS = (
    "com.databricks.sql.managedcatalog.acl.UnauthorizedAccessException: PERMISSION_DENIED: User "
    "does not have USE SCHEMA on Schema 'comms_media_dev.default'."
)
# databrickslabs/overwatch#587 (the error under Overwatch's module banner)
SCHEMA_MISMATCH_OVERWATCH = (
    "A schema mismatch detected when writing to the Delta table (Table ID: "
    "551ac627-baa7-454a-8ee0-5ce0ecb9b3b1).\n"
    "To enable schema migration using DataFrameWriter or DataStreamWriter, please set:\n"
    '\'.option(""mergeSchema"", ""true"")\'.'
)
# microsoft/fabricrealtimelab#48
MERGE_FIELDS_FABRIC = (
    "AnalysisException: [DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'timestamp' and "
    "'timestamp'"
)
# brooklyn-data/dbt_artifacts#158
DBT_ARTIFACTS = (
    "21:25:03  Completed with 1 error and 0 warnings:\n"
    "21:25:03  \n"
    "21:25:03  Failure in test unique_fct_dbt__run_results_command_invocation_id (models/schemas.yml)\n"
    "21:25:03    Got 1 result, configured to fail if != 0\n"
    "21:25:03  \n"
    "21:25:03    compiled SQL at target/compiled/dbt_artifacts/models/schemas.yml/"
    "unique_fct_dbt__run_results_command_invocation_id.sql"
)
# dbt-labs/dbt-core#5296
DBT_CORE = "Got 1 result, configured to fail if != 0"
# dotnet/spark#1074
WAITING_DOTNET = (
    "Unexpected failure while waiting for the cluster (0616-164143-ppdc6hs5) to be ready."
)
# SAFEHR-data/FlowEHR#141
BOOTSTRAP_FLOWEHR = (
    "cannot create cluster: 0303-131037-qid874qx is not able to transition from TERMINATED to "
    "RUNNING: Self-bootstrap failure during launch. Please try again later and contact Databricks "
    "if the problem persists. Termination info: code: SELF_BOOTSTRAP_FAILURE, type: , parameters: "
    "map[databricks_error_message:Self-bootstrap failure during launch. Node daemon fast failed "
    "and did not answer ping for instance 04387a5e9e4a4328b335937bb7db2e10]."
)
# microsoft/AzureTRE#3582
DRIVER_UNRESPONSIVE_TRE = (
    "Spark failed to start: Driver unresponsive. Possible reasons: library conflicts, incorrect "
    "metastore configuration, and init script misconfiguration."
)
# Azure/azure-databricks-client#22
DRIVER_DOWN_CLIENT = (
    "Spark encountered an error during startup. databricks_error_message: Spark error: Driver down"
)
# astronomer/astronomer-providers#460
LIBRARY_ASTRONOMER = (
    "Library installation failed for library due to user error. Error messages:\n"
    "'Manage' permissions are required to install libraries on a cluster"
)
# darshilparmar/tokyo-olympic-azure-data-engineering-project#6
FILESYSTEM_MISSING = (
    "ExecutionError: An error occurred while calling o398.mount.\n"
    ': java.io.FileNotFoundException: Operation failed: "The specified filesystem does not '
    'exist.", 404, HEAD, https://dbstorageub4vuer2lbptq.dfs.core.windows.net/root/?upn=false'
    "&action=getAccessControl&timeout=90\n"
    "\tat shaded.databricks.azurebfs.org.apache.hadoop.fs.azurebfs.AzureBlobFileSystem.checkException(AzureBlobFileSystem.java:1696)"
)
# databrickslabs/overwatch#132
NO_SUCH_FILE_OVERWATCH = (
    "FileNotFoundException: No such file or directory: s3a://acme-databricks-root/ireland-prod/"
    "123456/acme-data-prod-datalake-logs/workspaceId=123456\n"
    "\tat shaded.databricks.org.apache.hadoop.fs.s3a.S3AFileSystem.s3GetFileStatus(S3AFileSystem.java:3084)"
)

# --- synthetic texts in the shapes Databricks prints -------------------------------------------

TABLE_NOT_FOUND_UC = (
    "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`sales`.`orders` cannot "
    "be found. Verify the spelling and correctness of the schema and catalog. SQLSTATE: 42P01; "
    "line 1 pos 14"
)
TABLE_NOT_FOUND_UC_PY4J = (
    "Py4JJavaError: An error occurred while calling o4121.table.\n"
    ": org.apache.spark.sql.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view "
    "`prod`.`crm`.`leads_2024` cannot be found. Verify the spelling and correctness of the schema "
    "and catalog.\n\tat org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.failAnalysis(package.scala:52)"
)
OOM_PY4J = (
    "Py4JJavaError: An error occurred while calling o412.save.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 12.0 "
    "failed 4 times, most recent failure: Lost task 3.3 in stage 12.0 (TID 87) (10.139.64.12 "
    "executor 3): java.lang.OutOfMemoryError: Java heap space\n"
    "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:3628)\n"
    "Caused by: java.lang.OutOfMemoryError: Java heap space\n"
    "\tat java.util.Arrays.copyOf(Arrays.java:3236)"
)
FNF_PY4J = (
    "Py4JJavaError: An error occurred while calling o998.count.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 7 in stage 31.0 "
    "failed 4 times, most recent failure: Lost task 7.3 in stage 31.0 (TID 1204) (10.139.64.40 "
    "executor 1): java.io.FileNotFoundException: dbfs:/mnt/raw/orders/date=2025-01-02/"
    "part-00007-9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03.c000.snappy.parquet\n"
    "Caused by: java.io.FileNotFoundException: dbfs:/mnt/raw/orders/date=2025-01-02/"
    "part-00007-9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03.c000.snappy.parquet"
)
LAUNCH_AZURE = (
    "Unexpected failure while waiting for the cluster (0512-093011-abcd1234) to be ready: Cluster "
    "0512-093011-abcd1234 is in unexpected state Terminated: CLOUD_PROVIDER_LAUNCH_FAILURE"
    "(CLOUD_FAILURE): azure_error_code:OperationNotAllowed, azure_error_message:Operation could "
    "not be completed as it results in exceeding approved standardDDSv5Family Cores quota."
)
LAUNCH_READABLE = "Cluster terminated. Reason: Cloud Provider Launch Failure"
SPOT = (
    "Cluster '0301-151202-shared01' was terminated. Reason: SPOT_INSTANCE_TERMINATION "
    "(CLOUD_FAILURE). Parameters: instance_id:i-0a1b2c3d4e5f67890."
)


def _args(text: str | tuple[str, ...]) -> tuple[str | None, ...]:
    """A bare string is the error field; a tuple is (error, trace, state_message, code)."""
    return (text,) if isinstance(text, str) else text


MUST_MATCH: list[tuple[str, str | tuple[str, ...], str | tuple[str, ...]]] = [
    ("old table not found, two jobs", TABLE_NOT_FOUND_DOLPHIN, TABLE_NOT_FOUND_TAIER),
    ("old table not found, other wrapper", TABLE_NOT_FOUND_DOLPHIN, TABLE_NOT_FOUND_SPARKLYR),
    ("old table not found, short name", TABLE_NOT_FOUND_TAIER, TABLE_NOT_FOUND_H2O),
    (
        "concurrent append, qualified vs simple class",
        CONCURRENT_APPEND_QBEAST,
        CONCURRENT_APPEND_PIXELS,
    ),
    (
        "concurrent append with error class",
        CONCURRENT_APPEND_FLYWAY,
        "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to the root of the "
        "table by a concurrent update. Please try the operation again.",
    ),
    ("unresolved column, different suggestion lists", UNRESOLVED_SAGEMAKER, UNRESOLVED_OVERWATCH),
    ("unresolved column, two dbt models", UNRESOLVED_DBT_CUSTOMERS, UNRESOLVED_DBT_ORDERS),
    ("executor OOM, different tasks", STAGE_OOM_REINVENT, STAGE_OOM_ZINGG),
    ("executor OOM, published vs Py4J trace", STAGE_OOM_ZINGG, ("", OOM_PY4J)),
    ("stage NPE, different hosts", STAGE_NPE_PERWENDEL, STAGE_NPE_SPARKLYR),
    ("driver restart, different runtimes", DRIVER_RESTART_OPENFE, DRIVER_RESTART_UCX),
    ("HTTP 503, different reason phrases", HTTP_503_COMFY, ("", HTTP_503_ENSEMBL)),
    ("int() of empty vs text", VALUE_INT_EMPTY, ("", VALUE_INT_CNKI)),
    ("int() of text vs bytes", ("", VALUE_INT_CNKI), ("", VALUE_INT_BYTES)),
    ("int() of hex id", VALUE_INT_EMPTY, ("", VALUE_INT_HEX)),
    ("missing module", MODULE_PSUTIL, "ModuleNotFoundError: No module named 'great_expectations'"),
    (
        "permission on another schema",
        PERMISSION_IBIS,
        "com.databricks.sql.managedcatalog.acl.UnauthorizedAccessException: PERMISSION_DENIED: "
        "User does not have USE SCHEMA on Schema 'finance_uc.gold'.",
    ),
    (
        "schema mismatch on another table",
        SCHEMA_MISMATCH_OVERWATCH,
        "A schema mismatch detected when writing to the Delta table "
        "(Table ID: 5a80f00b-1321-4686-a285-b83e37a2c905).",
    ),
    (
        "merge fields on another column",
        MERGE_FIELDS_FABRIC,
        "AnalysisException: [DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'amount_eur' "
        "and 'amount_eur'",
    ),
    ("dbt test, full log vs the line alone", ("", DBT_ARTIFACTS), DBT_CORE),
    (
        "waiting for another cluster",
        ("", "", WAITING_DOTNET, "CLUSTER_ERROR"),
        (
            "",
            "",
            WAITING_DOTNET.replace("0616-164143-ppdc6hs5", "0101-000000-zz99yy88"),
            "CLUSTER_ERROR",
        ),
    ),
    (
        "bootstrap failure of another instance",
        ("", "", BOOTSTRAP_FLOWEHR, "CLOUD_FAILURE"),
        (
            "",
            "",
            BOOTSTRAP_FLOWEHR.replace("0303-131037-qid874qx", "0719-101010-ab12cd34").replace(
                "04387a5e9e4a4328b335937bb7db2e10", "9f1c2b3a4d5e6f708192a3b4c5d6e7f8"
            ),
            "CLOUD_FAILURE",
        ),
    ),
    ("new table not found, captured vs Py4J", TABLE_NOT_FOUND_UC, TABLE_NOT_FOUND_UC_PY4J),
    (
        "timeout, message vs result state",
        ("", "", "Run timed out.", "CANCELED"),
        ("", "", "", "TIMEDOUT"),
    ),
    (
        "timeout, run vs task wording",
        ("", "", "Run timed out after 3600 seconds.", "CANCELED"),
        ("", "", "Task orders_load timed out after 7205s.", "CANCELED"),
    ),
    (
        "launch failure, code vs readable reason",
        ("", "", LAUNCH_AZURE, "CLOUD_FAILURE"),
        ("", "", LAUNCH_READABLE, "CLOUD_FAILURE"),
    ),
    (
        "missing s3a file on another path",
        NO_SUCH_FILE_OVERWATCH,
        "FileNotFoundException: No such file or directory: s3a://other-bucket/logs/2025/01/x.json",
    ),
    (
        "ANSI colours do not matter",
        "\x1b[0;31mValueError\x1b[0m: invalid literal for int() with base 10: 'x'",
        VALUE_INT_EMPTY,
    ),
    (
        "same Python error through other files and lines",
        (
            "",
            "Traceback (most recent call last):\n  File \"/Workspace/a.py\", line 3, in <module>\n    f()\nKeyError: 'customer_id'",
        ),
        (
            "",
            "Traceback (most recent call last):\n  File \"/Workspace/Repos/x/b.py\", line 97, in g\n    h()\nKeyError: 'order_ts'",
        ),
    ),
]

MUST_DIFFER: list[tuple[str, str | tuple[str, ...], str | tuple[str, ...]]] = [
    ("stage failure: OOM vs NPE", STAGE_OOM_REINVENT, STAGE_NPE_PERWENDEL),
    ("stage failure: OOM vs Python worker crash", STAGE_OOM_ZINGG, STAGE_PYTHON_CRASH),
    ("stage failure: OOM vs fetch failed", STAGE_OOM_REINVENT, STAGE_FETCH_FAILED),
    ("stage failure: NPE vs executor lost", STAGE_NPE_SPARKLYR, STAGE_EXECUTOR_LOST),
    ("stage failure: IO cancel vs native library", STAGE_IO_COLAB, STAGE_SNAPPY_TEEHR),
    ("stage failure: OOM vs missing file (Py4J)", ("", OOM_PY4J), ("", FNF_PY4J)),
    ("Py4JJavaError: OOM vs table not found", OOM_PY4J, TABLE_NOT_FOUND_UC_PY4J),
    (
        "executor OOM vs driver-side OOM",
        STAGE_OOM_ZINGG,
        "java.lang.OutOfMemoryError: Java heap space",
    ),
    (
        "ValueError: int() vs strptime",
        VALUE_INT_EMPTY,
        "ValueError: time data '31/12/2024' does not match format '%Y-%m-%d'",
    ),
    (
        "ValueError: int() vs float()",
        VALUE_INT_EMPTY,
        "ValueError: could not convert string to float: 'n/a'",
    ),
    ("old table not found vs unresolved column", TABLE_NOT_FOUND_TAIER, UNRESOLVED_SAGEMAKER),
    ("new table not found vs permission", TABLE_NOT_FOUND_UC, PERMISSION_IBIS),
    (
        "concurrent append vs concurrent delete",
        CONCURRENT_APPEND_PIXELS,
        "ConcurrentDeleteReadException: This transaction attempted to read one or more files that "
        "were deleted (for example part-00001-1f2e.c000.snappy.parquet) by a concurrent update.",
    ),
    (
        "concurrent append vs table not found (both classed)",
        CONCURRENT_APPEND_FLYWAY,
        TABLE_NOT_FOUND_UC,
    ),
    ("driver restart vs executor OOM", DRIVER_RESTART_UCX, STAGE_OOM_ZINGG),
    (
        "HTTP 503 vs 404",
        HTTP_503_COMFY,
        "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: http://127.0.0.1:8288/queue",
    ),
    (
        "missing module vs failed import",
        MODULE_PSUTIL,
        "ImportError: cannot import name 'soft_unicode' from 'markupsafe'",
    ),
    ("schema mismatch vs merge fields", SCHEMA_MISMATCH_OVERWATCH, MERGE_FIELDS_FABRIC),
    (
        "missing filesystem vs missing file",
        FILESYSTEM_MISSING,
        NO_SUCH_FILE_OVERWATCH,
    ),
    (
        "dbt test vs dbt model error",
        DBT_CORE,
        "Database Error in model stg_orders (models/staging/stg_orders.sql)",
    ),
    (
        "launch failure vs spot loss",
        ("", "", LAUNCH_AZURE, "CLOUD_FAILURE"),
        ("", "", SPOT, "CLOUD_FAILURE"),
    ),
    (
        "driver unresponsive vs driver down",
        ("", "", DRIVER_UNRESPONSIVE_TRE, "DRIVER_ERROR"),
        ("", "", DRIVER_DOWN_CLIENT, "DRIVER_ERROR"),
    ),
    (
        "bootstrap vs launch failure",
        ("", "", BOOTSTRAP_FLOWEHR, "CLOUD_FAILURE"),
        ("", "", LAUNCH_AZURE, "CLOUD_FAILURE"),
    ),
    (
        "timeout vs launch failure",
        ("", "", "Run timed out.", "CANCELED"),
        ("", "", LAUNCH_AZURE, "CLOUD_FAILURE"),
    ),
    (
        "library install vs waiting for cluster",
        ("", "", LIBRARY_ASTRONOMER, "LIBRARY_INSTALLATION_ERROR"),
        ("", "", WAITING_DOTNET, "CLUSTER_ERROR"),
    ),
    (
        "a socket read timeout is not a run timeout",
        "java.net.SocketTimeoutException: Read timed out",
        ("", "", "Run timed out.", "CANCELED"),
    ),
]


def _sign(text: str | tuple[str, ...]) -> Signature:
    s = sign(*_args(text))
    assert s is not None
    return s


@pytest.mark.parametrize(("case", "a", "b"), MUST_MATCH, ids=[c[0] for c in MUST_MATCH])
def test_same_cause_gets_same_signature(
    case: str, a: str | tuple[str, ...], b: str | tuple[str, ...]
) -> None:
    sa, sb = _sign(a), _sign(b)
    assert sa.id == sb.id, (sa.title, sb.title)


@pytest.mark.parametrize(("case", "a", "b"), MUST_DIFFER, ids=[c[0] for c in MUST_DIFFER])
def test_different_causes_get_different_signatures(
    case: str, a: str | tuple[str, ...], b: str | tuple[str, ...]
) -> None:
    sa, sb = _sign(a), _sign(b)
    assert sa.id != sb.id, sa.title


def test_tables_have_enough_pairs() -> None:
    assert len(MUST_MATCH) >= 20
    assert len(MUST_DIFFER) >= 20


def test_version_is_a_positive_int() -> None:
    assert isinstance(SIGNATURE_VERSION, int)
    assert SIGNATURE_VERSION >= 1


@pytest.mark.parametrize(
    "args",
    [(None,), ("",), ("", "", "", None), ("  \n\t", None, " ", ""), (None, None, None, None)],
)
def test_nothing_to_sign_is_none(args: tuple[str | None, ...]) -> None:
    assert sign(*args) is None


def test_error_class_is_reported_when_present() -> None:
    assert _sign(UNRESOLVED_SAGEMAKER).error_class == "UNRESOLVED_COLUMN.WITH_SUGGESTION"
    assert _sign(TABLE_NOT_FOUND_UC_PY4J).error_class == "TABLE_OR_VIEW_NOT_FOUND"
    assert _sign(STAGE_OOM_ZINGG).error_class is None


def test_titles_are_readable() -> None:
    assert _sign(TABLE_NOT_FOUND_UC).title == (
        "[TABLE_OR_VIEW_NOT_FOUND] The table or view <name> cannot be found."
    )
    assert _sign(STAGE_OOM_REINVENT).title == "Stage failure: OutOfMemoryError: Java heap space"
    assert _sign(("", "", LAUNCH_AZURE, "CLOUD_FAILURE")).title == (
        "Cluster terminated: CLOUD_PROVIDER_LAUNCH_FAILURE"
    )
    texts = [t for _, a, b in MUST_MATCH + MUST_DIFFER for t in (a, b)]
    for text in texts:
        title = _sign(text).title
        assert 0 < len(title) <= 120
        assert "\n" not in title and "\x1b" not in title


def test_long_garbage_still_gets_a_bounded_title() -> None:
    s = _sign("x" * 100_000)
    assert len(s.title) <= 120


def test_golden_id_pins_the_function() -> None:
    # If this fails the keys changed: bump SIGNATURE_VERSION, then update the golden id.
    assert SIGNATURE_VERSION == 2
    assert _sign(TABLE_NOT_FOUND_UC).id == "b688ca8572a2"


def test_signing_is_deterministic() -> None:
    first = [_sign(t) for _, a, b in MUST_MATCH for t in (a, b)]
    again = [_sign(t) for _, a, b in MUST_MATCH for t in (a, b)]
    assert first == again
    assert all(len(s.id) == 12 and int(s.id, 16) >= 0 for s in first)


def test_a_huge_trace_is_signed_from_its_ends_so_the_work_is_bounded() -> None:
    f = draw_failure(random.Random(3), family_names()[0])
    filler = "\n".join(f"\tat org.example.Frame{i}.call(Frame.java:{i})" for i in range(40_000))
    huge = f.error_trace + "\n" + filler + "\n" + f.error_trace
    ends = huge[: 16 * 1024] + huge[-16 * 1024 :]
    assert len(huge) > 1_000_000
    assert sign(f.error, huge, f.state_message) == sign(f.error, ends, f.state_message)
