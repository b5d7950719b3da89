"""Failure texts of a simulated workspace: what runs/get-output and the task state would show.

Each family is one cause drawn with fresh variable parts (tables, paths, ids, numbers, times), so
grouping by cause can be tested against a known truth. Seeded and pure; imports nothing outside
the simulator, so the signer is never taught by the thing it is tested against.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FailureText:
    """The failure fields of one task run as the Jobs API returns them."""

    error: str
    error_trace: str
    state_message: str
    termination_code: str
    termination_type: str


@dataclass(frozen=True)
class Family:
    """One cause of failure; `transient` means a retry is likely to succeed."""

    name: str
    draw: Callable[[random.Random], FailureText]
    transient: bool = False


# --- variable parts -------------------------------------------------------------------------------

CATALOGS = ["main", "prod", "dev", "hive_metastore", "analytics", "finance_uc"]
SCHEMAS = ["sales", "staging", "bronze", "silver", "gold", "marketing", "ops", "crm"]
TABLES = [
    "orders", "order_items", "customers", "events_raw", "sessions", "invoices", "fx_rates",
    "inventory_snapshot", "web_clicks", "subscriptions", "refunds", "shipments", "leads",
]  # fmt: skip
COLUMNS = [
    "customer_id", "order_ts", "amount_eur", "discount_pct", "region", "sku", "event_type",
    "session_id", "country_code", "created_at", "updated_at", "status", "channel", "price",
]  # fmt: skip
MODULES = [
    "great_expectations", "psutil", "openpyxl", "boto3", "xgboost", "prophet", "shap",
    "pydeequ", "mlflow_extras", "acme_features", "lightgbm", "polars", "tenacity", "rapidfuzz",
]  # fmt: skip
HOSTS = [
    "api.exchangerates.example.com", "rates.fxfeed.example.net", "partner-api.example.org",
    "crm.internal.example.com", "geo.lookup.example.io", "weather.example.com",
]  # fmt: skip
USERS = ["dana.kim@example.com", "ravi.patel@example.com", "li.wong@example.com", "etl@example.com"]
NODE_TYPES = ["i3.xlarge", "i3.2xlarge", "m5d.large", "m5d.xlarge", "r5d.2xlarge", "c5d.4xlarge"]
ZONES = ["us-west-2a", "us-west-2b", "us-east-1c", "eu-west-1a", "eu-central-1b"]
RUNTIMES = ["13.3", "14.3", "15.4", "16.4"]
DBT_TESTS = [
    "unique",
    "not_null",
    "accepted_values",
    "relationships",
    "dbt_utils_expression_is_true",
]


def _table(rng: random.Random) -> tuple[str, str, str]:
    return (
        rng.choice(CATALOGS),
        rng.choice(SCHEMAS),
        rng.choice(TABLES) + rng.choice(["", "_v2", "_tmp", f"_{rng.randint(2019, 2025)}"]),
    )


def _command(rng: random.Random) -> str:
    return f"<command-{rng.randint(10**15, 10**16 - 1)}>"


def _cluster_id(rng: random.Random) -> str:
    letters = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=8))
    return (
        f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{rng.randint(0, 235959):06d}-{letters}"
    )


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ts(rng: random.Random) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"


def _path(rng: random.Random) -> str:
    part = f"part-{rng.randint(0, 199):05d}-{_uuid(rng)}.c000.snappy.parquet"
    table = rng.choice(TABLES)
    date = f"date=2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(
        [
            f"dbfs:/mnt/raw/{table}/{date}/{part}",
            f"s3://acme-lake-{rng.choice(['prod', 'dev'])}/{table}/{date}/{part}",
            f"abfss://landing@acmelake{rng.randint(1, 9)}.dfs.core.windows.net/{table}/{date}/{part}",
            f"gs://acme-{rng.choice(SCHEMAS)}/{table}/{part}",
        ]
    )


# --- trace pieces --------------------------------------------------------------------------------

_SPARK_FRAMES = [
    "org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.failAnalysis(package.scala:{n})",
    "org.apache.spark.sql.catalyst.analysis.CheckAnalysis.$anonfun$checkAnalysis0$2(CheckAnalysis.scala:{n})",
    "org.apache.spark.sql.catalyst.trees.TreeNode.foreachUp(TreeNode.scala:{n})",
    "org.apache.spark.sql.catalyst.analysis.Analyzer.checkAnalysis(Analyzer.scala:{n})",
    "org.apache.spark.sql.execution.QueryExecution.$anonfun$analyzed$1(QueryExecution.scala:{n})",
    "com.databricks.spark.util.FrameProfiler$.record(FrameProfiler.scala:{n})",
    "org.apache.spark.sql.catalyst.QueryPlanningTracker.measurePhase(QueryPlanningTracker.scala:{n})",
    "org.apache.spark.sql.execution.QueryExecution.executePhase(QueryExecution.scala:{n})",
    "org.apache.spark.sql.SparkSession.withActive(SparkSession.scala:{n})",
    "org.apache.spark.sql.Dataset$.ofRows(Dataset.scala:{n})",
    "org.apache.spark.sql.SparkSession.table(SparkSession.scala:{n})",
    "sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
    "sun.reflect.DelegatingMethodAccessorImpl.invoke(DelegatingMethodAccessorImpl.java:{n})",
    "java.lang.reflect.Method.invoke(Method.java:{n})",
    "py4j.reflection.MethodInvoker.invoke(MethodInvoker.java:{n})",
    "py4j.reflection.ReflectionEngine.invoke(ReflectionEngine.java:{n})",
    "py4j.Gateway.invoke(Gateway.java:{n})",
    "py4j.commands.AbstractCommand.invokeMethod(AbstractCommand.java:{n})",
    "py4j.commands.CallCommand.execute(CallCommand.java:{n})",
    "py4j.ClientServerConnection.waitForCommands(ClientServerConnection.java:{n})",
    "py4j.ClientServerConnection.run(ClientServerConnection.java:{n})",
    "java.lang.Thread.run(Thread.java:{n})",
]
_EXECUTOR_FRAMES = [
    "org.apache.spark.sql.execution.datasources.FileScanRDD$$anon$1.nextIterator(FileScanRDD.scala:{n})",
    "org.apache.spark.sql.execution.datasources.FileScanRDD$$anon$1.hasNext(FileScanRDD.scala:{n})",
    "org.apache.spark.sql.catalyst.expressions.GeneratedClass$GeneratedIteratorForCodegenStage{s}.processNext(Unknown Source)",
    "org.apache.spark.sql.execution.BufferedRowIterator.hasNext(BufferedRowIterator.java:{n})",
    "org.apache.spark.sql.execution.WholeStageCodegenEvaluatorFactory$WholeStageCodegenPartitionEvaluator$$anon$1.hasNext(WholeStageCodegenEvaluatorFactory.scala:{n})",
    "org.apache.spark.shuffle.sort.UnsafeShuffleWriter.write(UnsafeShuffleWriter.java:{n})",
    "org.apache.spark.scheduler.ShuffleMapTask.$anonfun$runTask$3(ShuffleMapTask.scala:{n})",
    "com.databricks.spark.util.ExecutorFrameProfiler$.record(ExecutorFrameProfiler.scala:{n})",
    "org.apache.spark.scheduler.ShuffleMapTask.runTask(ShuffleMapTask.scala:{n})",
    "org.apache.spark.scheduler.Task.doRunTask(Task.scala:{n})",
    "org.apache.spark.scheduler.Task.run(Task.scala:{n})",
    "org.apache.spark.executor.Executor$TaskRunner.$anonfun$run$13(Executor.scala:{n})",
    "org.apache.spark.util.Utils$.tryWithSafeFinally(Utils.scala:{n})",
    "org.apache.spark.executor.Executor$TaskRunner.run(Executor.scala:{n})",
    "java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:{n})",
    "java.util.concurrent.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:{n})",
    "java.lang.Thread.run(Thread.java:{n})",
]
_DRIVER_STACK = [
    "org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:{n})",
    "org.apache.spark.scheduler.DAGScheduler.$anonfun$abortStage$2(DAGScheduler.scala:{n})",
    "scala.collection.mutable.ResizableArray.foreach(ResizableArray.scala:{n})",
    "org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:{n})",
    "org.apache.spark.scheduler.DAGScheduler.handleTaskSetFailed(DAGScheduler.scala:{n})",
    "org.apache.spark.scheduler.DAGSchedulerEventProcessLoop.doOnReceive(DAGScheduler.scala:{n})",
    "org.apache.spark.util.EventLoop$$anon$1.run(EventLoop.scala:{n})",
    "org.apache.spark.SparkContext.runJob(SparkContext.scala:{n})",
    "org.apache.spark.sql.execution.datasources.FileFormatWriter$.write(FileFormatWriter.scala:{n})",
    "com.databricks.sql.transaction.tahoe.files.TransactionalWriteEdge.writeFiles(TransactionalWriteEdge.scala:{n})",
    "org.apache.spark.sql.DataFrameWriter.saveInternal(DataFrameWriter.scala:{n})",
    "org.apache.spark.sql.DataFrameWriter.save(DataFrameWriter.scala:{n})",
]


def _frames(rng: random.Random, pool: list[str], lo: int, hi: int) -> str:
    picked = sorted(rng.sample(range(len(pool)), rng.randint(lo, min(hi, len(pool)))))
    return "\n".join(
        "\tat " + pool[i].format(n=rng.randint(20, 3000), s=rng.randint(1, 40)) for i in picked
    )


def _pyspark_frames(rng: random.Random, call: str) -> str:
    """The PySpark part of a notebook traceback, from the user's cell down to py4j."""
    line = rng.randint(2, 80)
    return (
        f"File {_command(rng)}, line {line}\n"
        f"{line - 1:>7} # step {rng.randint(1, 9)}\n"
        f"----> {line} {call}\n"
        f"{line + 1:>7} display(df.limit({rng.randint(5, 50)}))\n\n"
        "File /databricks/spark/python/pyspark/instrumentation_utils.py:47, in "
        "_wrap_function.<locals>.wrapper(*args, **kwargs)\n"
        "     45 start = time.perf_counter()\n"
        "     46 try:\n"
        "---> 47     res = func(*args, **kwargs)\n"
        "     48     logger.log_success(\n"
        "     49         module_name, class_name, function_name, time.perf_counter() - start, signature\n"
        "     50     )\n\n"
        "File /databricks/spark/python/lib/py4j-0.10.9.7-src.zip/py4j/java_gateway.py:1355, in "
        "JavaMember.__call__(self, *args)\n"
        "   1349 command = proto.CALL_COMMAND_NAME +\\\n"
        "   1353 answer = self.gateway_client.send_command(command)\n"
        "-> 1355 return_value = get_return_value(\n"
        "   1356     answer, self.gateway_client, self.target_id, self.name)\n\n"
        "File /databricks/spark/python/pyspark/errors/exceptions/captured.py:255, in "
        "capture_sql_exception.<locals>.deco(*a, **kw)\n"
        "    252 from py4j.protocol import Py4JJavaError\n"
        "    254 try:\n"
        "--> 255     return f(*a, **kw)\n"
        "    256 except Py4JJavaError as e:\n"
        "    257     converted = convert_exception(e.java_exception)\n"
    )


def _captured(rng: random.Random, call: str, exc: str, message: str) -> str:
    """A notebook traceback where PySpark converted the Java exception (DBR 13+)."""
    return (
        "---------------------------------------------------------------------------\n"
        f"{exc:<42}Traceback (most recent call last)\n"
        + _pyspark_frames(rng, call)
        + "    258     if not isinstance(converted, UnknownException):\n"
        "    259         # Hide where the exception came from that shows a non-Pythonic\n"
        "    260         # JVM exception message.\n"
        "--> 261         raise converted from None\n"
        "    262     else:\n"
        "    263         raise\n\n"
        f"{exc}: {message}"
    )


def _py4j(rng: random.Random, call: str, method: str, java: str) -> tuple[str, str]:
    """(error, trace) of a Py4JJavaError around a Java trace, as older runtimes show it."""
    obj = f"o{rng.randint(100, 99999)}.{method}"
    head = f"Py4JJavaError: An error occurred while calling {obj}.\n: "
    trace = (
        "---------------------------------------------------------------------------\n"
        "Py4JJavaError                             Traceback (most recent call last)\n"
        + _pyspark_frames(rng, call)
        + "    258     raise\n\n"
        "File /databricks/spark/python/lib/py4j-0.10.9.7-src.zip/py4j/protocol.py:326, in "
        "get_return_value(answer, gateway_client, target_id, name)\n"
        "    324 value = OUTPUT_CONVERTER[type](answer[2:], gateway_client)\n"
        "    325 if answer[1] == REFERENCE_TYPE:\n"
        "--> 326     raise Py4JJavaError(\n"
        '    327         "An error occurred while calling {0}{1}{2}.\\n".\n'
        '    328         format(target_id, ".", name), value)\n\n' + head + java
    )
    return head + java.split("\n", 1)[0], trace


# How a spark_python_task or a wheel task enters user code before the frames that matter.
_PY_ENTRY = [
    (
        "/usr/lib/python3.11/runpy.py",
        "_run_module_as_main",
        'return _run_code(code, main_globals, None, "__main__", mod_spec)',
    ),
    ("/usr/lib/python3.11/runpy.py", "_run_code", "exec(code, run_globals)"),
    ("/databricks/python_shell/scripts/db_ipykernel_launcher.py", "<module>", "main()"),
    (
        "/databricks/python/lib/python3.11/site-packages/click/core.py",
        "__call__",
        "return self.main(*args, **kwargs)",
    ),
    (
        "/databricks/python/lib/python3.11/site-packages/click/core.py",
        "main",
        "rv = self.invoke(ctx)",
    ),
    (
        "/databricks/python/lib/python3.11/site-packages/click/core.py",
        "invoke",
        "return ctx.invoke(self.callback, **ctx.params)",
    ),
    ("/Workspace/Shared/etl/lib/runner.py", "run_step", "result = step.fn(spark, **params)"),
    ("/Workspace/Shared/etl/lib/retry.py", "wrapped", "return fn(*args, **kwargs)"),
]


def _python_traceback(rng: random.Random, frames: list[tuple[str, str, str]], last: str) -> str:
    """A plain Python traceback entering user code, then through the given (file, func, source)."""
    lines = ["Traceback (most recent call last):"]
    entry = [_PY_ENTRY[i] for i in sorted(rng.sample(range(len(_PY_ENTRY)), rng.randint(4, 8)))]
    for file, func, src in entry + frames:
        lines.append(f'  File "{file}", line {rng.randint(5, 900)}, in {func}')
        lines.append(f"    {src}")
    lines.append(last)
    return "\n".join(lines)


def _stage_failure(rng: random.Random, inner: str) -> tuple[str, str, str, str]:
    """The pieces of "Job aborted due to stage failure" around an executor-side exception."""
    task, stage, attempt = rng.randint(0, 400), rng.randint(1, 900), rng.randint(0, 3)
    executor, tid = rng.randint(0, 64), rng.randint(10, 99999)
    head = (
        f"org.apache.spark.SparkException: Job aborted due to stage failure: Task {task} in stage "
        f"{stage}.{attempt} failed 4 times, most recent failure: Lost task {task}.3 in stage "
        f"{stage}.{attempt} (TID {tid}) ({_ip(rng)} executor {executor}): {inner}"
    )
    return head, str(task), str(stage), str(tid)


def _failed(error: str, trace: str, state: str = "") -> FailureText:
    return FailureText(error, trace, state, "RUN_EXECUTION_ERROR", "CLIENT_ERROR")


# --- families -------------------------------------------------------------------------------------


def table_not_found(rng: random.Random) -> FailureText:
    cat, sch, tbl = _table(rng)
    name = f"`{cat}`.`{sch}`.`{tbl}`"
    message = (
        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view {name} cannot be found. Verify the spelling "
        "and correctness of the schema and catalog.\nIf you did not qualify the name with a "
        "schema, verify the current_schema() output, or qualify the name with the correct schema "
        "and catalog.\nTo tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF "
        f"EXISTS. SQLSTATE: 42P01; line {rng.randint(1, 40)} pos {rng.randint(0, 120)};\n"
        f"'Project [*]\n+- 'UnresolvedRelation [{cat}, {sch}, {tbl}], [], false\n"
    )
    call = f'df = spark.table("{cat}.{sch}.{tbl}")'
    if rng.random() < 0.3:
        # Older runtimes leave the Java exception inside Py4JJavaError.
        java = (
            "org.apache.spark.sql.AnalysisException: "
            + message
            + _frames(rng, _SPARK_FRAMES, 8, 20)
        )
        error, trace = _py4j(rng, call, "table", java)
        return _failed(error, trace)
    trace = _captured(rng, call, "AnalysisException", message)
    return _failed("AnalysisException: " + message.split("\n", 1)[0], trace)


def unresolved_column(rng: random.Random) -> FailureText:
    col = rng.choice(COLUMNS) + rng.choice(["", "_id", "_old", "2"])
    near = rng.sample(COLUMNS, rng.randint(1, 5))
    suggestion = ", ".join(f"`{c}`" for c in near)
    plan = ", ".join(f"{c}#{rng.randint(100, 99999)}" for c in near)
    message = (
        f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `{col}` "
        f"cannot be resolved. Did you mean one of the following? [{suggestion}]. SQLSTATE: 42703;\n"
        f"'Project ['{col}, {plan}]\n+- Relation {'.'.join(_table(rng))}[{plan}] parquet\n"
    )
    trace = _captured(rng, f'df.select("{col}")', "AnalysisException", message)
    return _failed("AnalysisException: " + message.split("\n", 1)[0], trace)


def stage_failure_oom(rng: random.Random) -> FailureText:
    head, *_ = _stage_failure(rng, "java.lang.OutOfMemoryError: Java heap space")
    java = (
        head
        + "\n"
        + _frames(rng, _EXECUTOR_FRAMES, 5, 12)
        + "\n\nDriver stacktrace:\n"
        + _frames(rng, _DRIVER_STACK, 6, 12)
    )
    if rng.random() < 0.7:
        java += (
            "\nCaused by: java.lang.OutOfMemoryError: Java heap space\n"
            "\tat java.util.Arrays.copyOf(Arrays.java:3236)\n"
            + _frames(rng, _EXECUTOR_FRAMES, 4, 10)
        )
    cat, sch, tbl = _table(rng)
    call = f'df.write.mode("overwrite").saveAsTable("{cat}.{sch}.{tbl}")'
    error, trace = _py4j(rng, call, rng.choice(["saveAsTable", "save", "collectToPython"]), java)
    return _failed(error, trace)


def stage_failure_missing_file(rng: random.Random) -> FailureText:
    path = _path(rng)
    inner = f"java.io.FileNotFoundException: {path}"
    head, *_ = _stage_failure(rng, inner)
    java = (
        head + "\n\nIt is possible the underlying files have been updated. You can explicitly "
        "invalidate the cache in Spark by running 'REFRESH TABLE tableName' command in SQL or by "
        "recreating the Dataset/DataFrame involved.\n"
        + _frames(rng, _EXECUTOR_FRAMES, 5, 12)
        + "\n\nDriver stacktrace:\n"
        + _frames(rng, _DRIVER_STACK, 6, 12)
        + f"\nCaused by: java.io.FileNotFoundException: {path}\n"
        + _frames(rng, _EXECUTOR_FRAMES, 4, 10)
    )
    call = f'df = spark.read.parquet("{path.rsplit("/", 2)[0]}")'
    error, trace = _py4j(rng, call, rng.choice(["save", "count", "showString"]), java)
    return _failed(error, trace)


def missing_path(rng: random.Random) -> FailureText:
    path = _path(rng).rsplit("/", 1)[0]
    message = f"[PATH_NOT_FOUND] Path does not exist: {path}. SQLSTATE: 42K03"
    trace = _captured(
        rng, f'df = spark.read.format("delta").load("{path}")', "AnalysisException", message
    )
    return _failed("AnalysisException: " + message, trace)


def driver_oom(rng: random.Random) -> FailureText:
    message = (
        "The spark driver has stopped unexpectedly and is restarting. Your notebook will be "
        "automatically reattached."
    )
    trace = (
        message
        + f"\n\tat com.databricks.spark.chauffeur.Chauffeur.onDriverStateChange(Chauffeur.scala:{rng.randint(1200, 1600)})"
        + f"\n\tat com.databricks.spark.chauffeur.Chauffeur.$anonfun$driverStateOpt$1(Chauffeur.scala:{rng.randint(200, 400)})"
        + f"\n\tat com.databricks.spark.chauffeur.DriverDaemonMonitorImpl.goToStopped(DriverDaemonMonitorImpl.scala:{rng.randint(200, 400)})"
        + "\n\tat scala.runtime.java8.JFunction0$mcV$sp.apply(JFunction0$mcV$sp.java:23)"
        + "\n\tat com.databricks.threading.NamedExecutor$$anon$2.$anonfun$run$1(NamedExecutor.scala:"
        + f"{rng.randint(300, 400)})"
        + "\n"
        + _frames(rng, _EXECUTOR_FRAMES[-3:] + _SPARK_FRAMES[5:9], 6, 7)
    )
    return FailureText(message, trace, "", "DRIVER_ERROR", "INTERNAL_ERROR")


def value_error_int(rng: random.Random) -> FailureText:
    value = rng.choice(
        [
            "",
            "n/a",
            "12.5",
            "N/A",
            "—",
            "1,204",
            f"{rng.randint(1, 999)}kg",
            f"0x{rng.randint(16, 4095):x}",
        ]
    )
    last = f"ValueError: invalid literal for int() with base 10: {value!r}"
    if rng.random() < 0.3:
        # Raised inside a UDF: Spark wraps the worker's traceback in a PythonException.
        worker = _python_traceback(
            rng,
            [
                ("/databricks/spark/python/pyspark/worker.py", "main", "process()"),
                (
                    "/databricks/spark/python/pyspark/util.py",
                    "wrapper",
                    "return f(*args, **kwargs)",
                ),
                (f"{_command(rng)}", "parse_qty", "return int(s)"),
            ],
            last,
        )
        message = (
            "\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
            + worker
        )
        trace = _captured(
            rng, 'df.withColumn("qty", parse_qty("quantity")).count()', "PythonException", message
        )
        return _failed("PythonException: " + message.strip().split("\n", 1)[0], trace)
    trace = _python_traceback(
        rng,
        [
            (
                f"/Workspace/Repos/{rng.choice(USERS)}/etl/jobs/load_{rng.choice(TABLES)}.py",
                "<module>",
                "main()",
            ),
            ("/Workspace/Shared/etl/lib/parse.py", "parse_row", 'qty = int(row["quantity"])'),
        ],
        last,
    )
    return _failed(last, trace)


def value_error_date(rng: random.Random) -> FailureText:
    bad = f"{rng.randint(1, 31):02d}/{rng.randint(1, 12):02d}/{rng.randint(2019, 2026)}"
    fmt = rng.choice(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y"])
    last = f"ValueError: time data {bad!r} does not match format {fmt!r}"
    trace = _python_traceback(
        rng,
        [
            (f"/Workspace/Repos/{rng.choice(USERS)}/etl/jobs/ingest.py", "<module>", "run(spark)"),
            ("/Workspace/Shared/etl/lib/dates.py", "to_date", "return datetime.strptime(s, fmt)"),
            (
                "/usr/lib/python3.11/_strptime.py",
                "_strptime_datetime",
                "tt, fraction, gmtoff_fraction = _strptime(data_string, format)",
            ),
            (
                "/usr/lib/python3.11/_strptime.py",
                "_strptime",
                'raise ValueError("time data %r does not match format %r" %',
            ),
        ],
        last,
    )
    return _failed(last, trace)


def key_error(rng: random.Random) -> FailureText:
    key = rng.choice([*COLUMNS, "id", "payload", "metadata", "items"])
    last = f"KeyError: {key!r}"
    trace = _python_traceback(
        rng,
        [
            (f"/Workspace/Repos/{rng.choice(USERS)}/api_sync/main.py", "<module>", "sync()"),
            ("/Workspace/Shared/api_sync/transform.py", "flatten", f"out[k] = record[{key!r}]"),
        ],
        last,
    )
    return _failed(last, trace)


def module_not_found(rng: random.Random) -> FailureText:
    module = rng.choice(MODULES)
    last = f"ModuleNotFoundError: No module named '{module}'"
    trace = (
        "---------------------------------------------------------------------------\n"
        "ModuleNotFoundError                       Traceback (most recent call last)\n"
        f"File {_command(rng)}, line {rng.randint(1, 12)}\n"
        f"----> 1 import {module}\n"
        "File /databricks/python_shell/lib/dbruntime/autoreload/discoverability/hook.py:71, in "
        "AutoreloadDiscoverabilityHook._patched_import(self, name, *args, **kwargs)\n"
        "     65 if not self._should_hint and (\n"
        "     70     self._should_hint = True\n"
        "---> 71 module = self._original_builtins_import(name, *args, **kwargs)\n"
        "     72 if self._should_hint:\n"
        "     73     self._should_hint = False\n"
        "     74     self._hint(name)\n\n"
        "File /databricks/python_shell/lib/dbruntime/PostImportHook.py:223, in "
        "_PostImportFinder.find_spec(self, fullname, path, target)\n"
        "    220 self.in_progress[fullname] = True\n"
        "    221 try:\n"
        "--> 223     return self._find_spec(fullname, path, target)\n"
        "    224 finally:\n"
        "    225     del self.in_progress[fullname]\n\n" + last
    )
    return _failed(last, trace)


def permission_denied(rng: random.Random) -> FailureText:
    cat, sch, tbl = _table(rng)
    message = (
        f"[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have SELECT on Table "
        f"'{cat}.{sch}.{tbl}'. SQLSTATE: 42501"
    )
    trace = _captured(
        rng, f'spark.sql("SELECT * FROM {cat}.{sch}.{tbl}")', "AnalysisException", message
    )
    return _failed("AnalysisException: " + message, trace)


def concurrent_append(rng: random.Random) -> FailureText:
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    region = rng.choice(["emea", "amer", "apac"])
    commit = (
        f'{{"timestamp":{rng.randint(1_700_000_000_000, 1_760_000_000_000)},'
        f'"userId":"{rng.randint(10**15, 10**16 - 1)}","userName":"{rng.choice(USERS)}",'
        f'"operation":"WRITE","operationParameters":{{"mode":"Append","partitionBy":"[\\"date\\"]"}},'
        f'"job":{{"jobId":"{rng.randint(10**14, 10**15)}","runId":"{rng.randint(10**14, 10**15)}"}},'
        f'"clusterId":"{_cluster_id(rng)}","readVersion":{rng.randint(1, 9000)},'
        f'"isolationLevel":"WriteSerializable","isBlindAppend":true,'
        f'"txnId":"{_uuid(rng)}"}}'
    )
    message = (
        "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to partition "
        f"[date={date}, region={region}] by a concurrent update. Please try the operation again."
    )
    java = (
        f"io.delta.exceptions.ConcurrentAppendException: {message}\n"
        f"Conflicting commit: {commit}\n"
        "Refer to https://docs.databricks.com/delta/concurrency-control.html for more details.\n"
        + _frames(rng, _DRIVER_STACK, 4, 9)
    )
    cat, sch, tbl = _table(rng)
    error, trace = _py4j(
        rng, f'df.write.mode("append").saveAsTable("{cat}.{sch}.{tbl}")', "saveAsTable", java
    )
    return _failed(error, trace)


def schema_mismatch(rng: random.Random) -> FailureText:
    cols = rng.sample(COLUMNS, rng.randint(3, 7))
    extra = rng.choice(COLUMNS)
    table = "\n".join(f"-- {c}: string (nullable = true)" for c in cols)
    data = (
        table + f"\n-- {extra}_new: {rng.choice(['long', 'double', 'timestamp'])} (nullable = true)"
    )
    message = (
        f"[_LEGACY_ERROR_TEMP_DELTA_0007] A schema mismatch detected when writing to the Delta "
        f"table (Table ID: {_uuid(rng)}).\nTo enable schema migration using DataFrameWriter or "
        'DataStreamWriter, please set:\n\'.option("mergeSchema", "true")\'.\nFor other '
        "operations, set the session configuration\nspark.databricks.delta.schema.autoMerge."
        'enabled to "true". See the documentation\nspecific to the operation for details.\n\n'
        f"Table schema:\nroot\n{table}\n\nData schema:\nroot\n{data}\n"
    )
    cat, sch, tbl = _table(rng)
    trace = _captured(
        rng,
        f'df.write.mode("append").saveAsTable("{cat}.{sch}.{tbl}")',
        "AnalysisException",
        message,
    )
    return _failed("AnalysisException: " + message.split("\n", 1)[0], trace)


def http_503(rng: random.Random) -> FailureText:
    url = (
        f"https://{rng.choice(HOSTS)}/v{rng.randint(1, 3)}/{rng.choice(['rates', 'accounts', 'orders', 'lookup'])}"
        f"?date=2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}&page={rng.randint(1, 400)}"
    )
    last = f"requests.exceptions.HTTPError: 503 Server Error: {rng.choice(['Service Unavailable', 'Service Temporarily Unavailable', 'Slow Down'])} for url: {url}"
    trace = _python_traceback(
        rng,
        [
            (f"/Workspace/Repos/{rng.choice(USERS)}/ingest/fetch.py", "<module>", "pull_all()"),
            ("/Workspace/Shared/ingest/client.py", "get_page", "resp.raise_for_status()"),
            (
                "/databricks/python/lib/python3.11/site-packages/requests/models.py",
                "raise_for_status",
                "raise HTTPError(http_error_msg, response=self)",
            ),
        ],
        last,
    )
    return _failed(last.replace("requests.exceptions.", ""), trace)


def dbt_test_failure(rng: random.Random) -> FailureText:
    model = rng.choice(TABLES)
    test = f"{rng.choice(DBT_TESTS)}_{model}_{rng.choice(COLUMNS)}"
    n, total = rng.randint(1, 5000), rng.randint(20, 400)
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    result = "result" if n == 1 else "results"
    yml = f"models/{rng.choice(['marts', 'staging', 'intermediate'])}/{model}.yml"
    log = (
        f"{clock}  Running with dbt=1.{rng.randint(6, 9)}.{rng.randint(0, 9)}\n"
        f"{clock}  Registered adapter: databricks=1.{rng.randint(6, 9)}.{rng.randint(0, 9)}\n"
        f"{clock}  Found {rng.randint(40, 600)} models, {total} data tests, {rng.randint(5, 90)} sources\n"
        f"{clock}  Concurrency: {rng.randint(4, 16)} threads (target='prod')\n"
        f"{clock}  {rng.randint(1, total)} of {total} FAIL {n} {test} {'.' * 10} [FAIL {n} in {rng.uniform(0.5, 40):.2f}s]\n"
        f"{clock}  Finished running {total} data tests in 0 hours {rng.randint(0, 59)} minutes and {rng.uniform(0, 59):.2f} seconds.\n"
        f"{clock}  Completed with 1 error and 0 warnings:\n"
        f"{clock}  Failure in test {test} ({yml})\n"
        f"{clock}    Got {n} {result}, configured to fail if != 0\n"
        f"{clock}    compiled code at target/compiled/acme/{yml}/{test}.sql\n"
        f"{clock}  Done. PASS={total - 1} WARN=0 ERROR=1 SKIP=0 TOTAL={total}"
    )
    return _failed(
        f"Failure in test {test} ({yml})\n  Got {n} {result}, configured to fail if != 0", log
    )


def timeout(rng: random.Random) -> FailureText:
    seconds = rng.choice([600, 1800, 3600, 7200, 14400]) + rng.randint(0, 30)
    state = rng.choice(
        [
            f"Run timed out after {seconds} seconds.",
            "Run timed out.",
            f"Task {rng.choice(TABLES)}_load timed out after {seconds}s.",
        ]
    )
    return FailureText("", "", state, "CANCELED", "CLIENT_ERROR")


def cloud_launch_failure(rng: random.Random) -> FailureText:
    cid = _cluster_id(rng)
    detail = rng.choice(
        [
            f"azure_error_code:OperationNotAllowed, azure_error_message:Operation could not be "
            f"completed as it results in exceeding approved standardDDSv5Family Cores quota. "
            f"Location: westeurope, Current Limit: {rng.randint(10, 500)}, Current Usage: "
            f"{rng.randint(10, 500)}, Additional Required: {rng.randint(4, 64)}",
            f"aws_api_error_code:InsufficientInstanceCapacity, aws_error_message:We currently do "
            f"not have sufficient {rng.choice(NODE_TYPES)} capacity in the Availability Zone you "
            f"requested ({rng.choice(ZONES)}).",
            f"gcp_error_message:The zone 'projects/acme-{rng.randint(100, 999)}/zones/"
            f"{rng.choice(ZONES)}' does not have enough resources available to fulfill the request.",
        ]
    )
    state = rng.choice(
        [
            f"Unexpected failure while waiting for the cluster ({cid}) to be ready: Cluster {cid} is "
            f"in unexpected state Terminated: CLOUD_PROVIDER_LAUNCH_FAILURE(CLOUD_FAILURE): {detail}",
            f"Cluster '{cid}' was terminated. Reason: CLOUD_PROVIDER_LAUNCH_FAILURE (CLOUD_FAILURE). "
            f"Parameters: {detail}",
        ]
    )
    return FailureText("", "", state, "CLOUD_FAILURE", "CLOUD_FAILURE")


def spot_loss(rng: random.Random) -> FailureText:
    cid = _cluster_id(rng)
    instance = f"i-{rng.getrandbits(68):017x}"
    state = (
        f"Cluster '{cid}' was terminated. Reason: SPOT_INSTANCE_TERMINATION (CLOUD_FAILURE). "
        f"Parameters: instance_id:{instance}, databricks_error_message:The driver's spot instance "
        f"was reclaimed by the cloud provider at {_ts(rng)} ({rng.choice(ZONES)})."
    )
    return FailureText("", "", state, "CLOUD_FAILURE", "CLOUD_FAILURE")


def driver_unreachable(rng: random.Random) -> FailureText:
    cid = _cluster_id(rng)
    state = (
        f"Unexpected failure while waiting for the cluster ({cid}) to be ready: Cluster {cid} is "
        f"in unexpected state Terminated: DRIVER_UNREACHABLE(SERVICE_FAULT): "
        f"databricks_error_message:Attempt to reach the driver at {_ip(rng)} failed after "
        f"{rng.randint(3, 12)} attempts over {rng.randint(300, 900)} seconds."
    )
    return FailureText("", "", state, "DRIVER_ERROR", "INTERNAL_ERROR")


FAMILIES: list[Family] = [
    Family("table_not_found", table_not_found),
    Family("unresolved_column", unresolved_column),
    Family("stage_failure_oom", stage_failure_oom),
    Family("stage_failure_missing_file", stage_failure_missing_file),
    Family("missing_path", missing_path),
    Family("driver_oom", driver_oom),
    Family("value_error_int", value_error_int),
    Family("value_error_date", value_error_date),
    Family("key_error", key_error),
    Family("module_not_found", module_not_found),
    Family("permission_denied", permission_denied),
    Family("concurrent_append", concurrent_append),
    Family("schema_mismatch", schema_mismatch),
    Family("http_503", http_503, transient=True),
    Family("dbt_test_failure", dbt_test_failure),
    Family("timeout", timeout),
    Family("cloud_launch_failure", cloud_launch_failure, transient=True),
    Family("spot_loss", spot_loss, transient=True),
    Family("driver_unreachable", driver_unreachable, transient=True),
]
_BY_NAME = {f.name: f for f in FAMILIES}


def family_names() -> list[str]:
    return [f.name for f in FAMILIES]


def is_transient(family_name: str) -> bool:
    return _BY_NAME[family_name].transient


def draw_failure(rng: random.Random, family_name: str) -> FailureText:
    """One failure of the named family; KeyError for an unknown name."""
    return _BY_NAME[family_name].draw(rng)
