"""Nodes: every raid seen, its state, load, disk, GPUs and last heartbeat; `d` drains or resumes one."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding

from rai.domain.models import NodeHeartbeat
from rai.live.board import NodeView
from raitui.components.live_table import LiveTable
from raitui.data import ClusterSnapshot, describe_error
from raitui.format import BAD, DIM, NODE_STATE, WARN, age_text, percent_text, size_text
from raitui.views.base import View

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("node", "NODE", 16),
    ("state", "STATE", 9),
    ("jobs", "JOBS", 5),
    ("cpu", "CPU", 5),
    ("mem", "MEM", 5),
    ("disk", "DISK FREE", 12),
    ("gpus", "GPUS", 18),
    ("queue", "QUEUE", 16),
    ("version", "VERSION", 8),
    ("beat", "HEARTBEAT", 9),
)
RIGHT = {"jobs", "cpu", "mem", "disk", "beat"}
LOW_DISK_FRACTION = 0.10  # free space below this share of the disk is low
LOW_DISK_BYTES = 5 * 1024**3  # and so is less than this, however big the disk


def disk_low(hb: NodeHeartbeat) -> bool:
    if not hb.disk_total:
        return False
    return hb.disk_free < LOW_DISK_BYTES or hb.disk_free / hb.disk_total < LOW_DISK_FRACTION


def gpu_text(hb: NodeHeartbeat) -> Text:
    if not hb.gpus:  # offered by config (raid.gpus) but nvidia-smi reports nothing: the count, no readings
        return Text(f"{hb.gpu_count}× (no readings)", style=DIM) if hb.gpu_count else Text("-", style=DIM)
    utils = [g.utilization for g in hb.gpus if g.utilization is not None]
    used = sum(g.memory_used or 0 for g in hb.gpus)
    total = sum(g.memory_total or 0 for g in hb.gpus)
    text = Text(f"{len(hb.gpus)}×")
    text.append(f" {sum(utils) / len(utils):.0f}%" if utils else " -")
    if total:
        text.append(f" {used / 1024**3:.0f}/{total / 1024**3:.0f}G", style=DIM)
    return text


class NodesView(View):
    view_name = "nodes"
    title = "Nodes"
    description = "every raid node: load, disk, GPUs, heartbeat; d drains or resumes one"

    BINDINGS = [Binding("d", "toggle_drain", "Drain/resume")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._snapshot: ClusterSnapshot | None = None

    def compose(self) -> ComposeResult:
        table = LiveTable(COLUMNS, right=RIGHT, fill_last=False, id="nodes-table")
        table.border_title = "nodes"
        yield table

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        table = self.query_one(LiveTable)
        rows = {n.name: self._cells(n, snapshot) for n in snapshot.nodes}
        table.sync(rows)
        table.set_titles(f"nodes ({snapshot.nodes_up} up, {snapshot.nodes_lost} lost)")

    @staticmethod
    def _cells(n: NodeView, snapshot: ClusterSnapshot) -> tuple:
        state = Text(n.state, style=NODE_STATE.get(n.state, ""))
        hb = n.heartbeat
        if hb is None:
            dash = Text("-", style=DIM, justify="right")
            return (Text(n.name, style=DIM), state, dash, dash, dash, dash, Text("-", style=DIM),
                    Text("-", style=DIM), Text("-", style=DIM), Text("expired", style=BAD, justify="right"))
        disk = Text(size_text(hb.disk_free), justify="right")
        if disk_low(hb) or hb.refusing:  # refusing: below raid.min_free_disk, the node takes no jobs
            disk = Text(f"⚠ {size_text(hb.disk_free)}", style=BAD, justify="right")
        jobs = Text(f"{len(hb.running)}/{hb.capacity}", justify="right",
                    style="bold" if hb.running else "")
        age = (snapshot.taken_at - hb.at).total_seconds()
        beat = Text(f"{age_text(age)} ago", justify="right", style=WARN if age > 15 else DIM)
        cpu = Text(percent_text(hb.cpu_percent), justify="right", style=WARN if hb.cpu_percent >= 90 else "")
        mem = Text(percent_text(hb.memory_percent), justify="right",
                   style=WARN if hb.memory_percent >= 90 else "")
        return (n.name, state, jobs, cpu, mem, disk, gpu_text(hb), hb.queue, hb.version, beat)

    def selected_node(self) -> NodeView | None:
        table = self.query_one(LiveTable)
        if self._snapshot is None or table.row_count == 0:
            return None
        key = table.selected_key()
        return next((n for n in self._snapshot.nodes if n.name == key), None)

    def action_toggle_drain(self) -> None:
        node = self.selected_node()
        if node is None:
            self.app.notify("no node selected", severity="warning")
            return
        self._set_draining(node.name, not node.draining)

    @work(thread=True, group="drain")
    def _set_draining(self, node: str, draining: bool) -> None:
        try:
            self.console.data.set_draining(node, draining)
        except Exception as e:
            self.app.call_from_thread(self.app.notify, f"cannot change {node}: {describe_error(e)}",
                                      severity="error")
            return
        what = ("draining: it finishes what it runs and takes nothing new" if draining
                else "resumed: it takes jobs again")
        self.app.call_from_thread(self.app.notify, f"{node} {what}")
        self.app.call_from_thread(self.console.poll_now)
