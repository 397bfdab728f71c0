"""Pictures of a workflow: Mermaid text, or a PNG/SVG drawn with matplotlib (the ``viz`` extra)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from agentforge.workflow.spec import END, START, WorkflowSpec


def edges(spec: WorkflowSpec) -> list[tuple[str, str, str]]:
    """(source, target, label) for every edge, with routers' routes and implicit exits to END."""
    out: list[tuple[str, str, str]] = [(START, e, "") for e in spec.entries()]
    has_out: set[str] = set()
    for edge in spec.edges:
        label = "all of" if len(edge.sources()) > 1 else ""
        for src in edge.sources():
            has_out.add(src)
            out += [(src, dst, label) for dst in edge.targets()]
    for node in spec.nodes:
        branches = node.branches()
        out += [(node.id, b.target, b.label) for b in branches]
        if not branches and node.id not in has_out:
            out.append((node.id, END, ""))
    return out


def to_mermaid(spec: WorkflowSpec) -> str:
    lines = ["flowchart TD", f"    {START}([start])", f"    {END}([end])"]
    for node in spec.nodes:
        left, right = node.shape
        lines.append(f'    {node.id}{left}"{node.id}<br/><i>{node.kind}</i>"{right}')
    for src, dst, label in edges(spec):
        text = label.replace('"', "'").replace("|", "/")
        lines.append(f'    {src} -->|"{text}"| {dst}' if text else f"    {src} --> {dst}")
    return "\n".join(lines) + "\n"


def draw(spec: WorkflowSpec, path: Path, fmt: str) -> Path:
    """Draw a layered picture; raises ``ImportError`` if matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g: nx.DiGraph = nx.DiGraph()
    all_edges = edges(spec)
    for src, dst, label in all_edges:
        g.add_edge(src, dst, label=label)
    layer = _layers(g)
    for name, depth in layer.items():
        g.nodes[name]["layer"] = depth
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=1.0)
    pos = {k: (v[0], -layer[k]) for k, v in pos.items()}
    kinds = {n.id: n.kind for n in spec.nodes}
    node_colors = {n.id: n.color for n in spec.nodes}
    width = max(6.0, 2.2 * max(sum(1 for v in layer.values() if v == d) for d in set(layer.values())))
    fig, ax = plt.subplots(figsize=(width, 1.4 * (max(layer.values()) + 1) + 1))
    forward = [(s, d) for s, d, _ in all_edges if layer[d] > layer[s]]
    back = [(s, d) for s, d, _ in all_edges if layer[d] <= layer[s]]
    nx.draw_networkx_edges(g, pos, edgelist=forward, ax=ax, arrows=True, arrowsize=14, node_size=2600)
    nx.draw_networkx_edges(g, pos, edgelist=back, ax=ax, arrows=True, arrowsize=14, node_size=2600,
                           style="dashed", connectionstyle="arc3,rad=0.4", edge_color="#b02a37")
    labels = {n: (f"{n}\n({kinds[n]})" if n in kinds else n.lower()) for n in g.nodes}
    colors = [node_colors.get(n, "#ffffff") for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=2600, edgecolors="#333333", node_shape="s")
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=8)
    edge_labels: dict[tuple[str, str], str] = {}
    for src, dst, lbl in all_edges:  # two routes to one target share an edge: show both labels
        if lbl and (src, dst) not in back:
            edge_labels[(src, dst)] = f"{edge_labels[(src, dst)]} / {lbl}" if (src, dst) in edge_labels else lbl
    nx.draw_networkx_edge_labels(g, pos, edge_labels=edge_labels, ax=ax, font_size=7, rotate=False,
                                 bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.9})
    ax.set_title(f"{spec.name} ({spec.hash})", fontsize=10)
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, bbox_inches="tight")
    plt.close(fig)
    return path


def back_edges(g: nx.DiGraph, source: str = START) -> set[tuple[str, str]]:
    """Edges that close a loop: they point at a node still on the depth-first path from ``source`` (then
    from each node not reached yet, so loops among unreachable nodes are found too).

    Iterative, so a chain of any length is walked without touching the recursion limit.
    """
    back: set[tuple[str, str]] = set()
    seen: set[str] = set()
    for root in [source, *g.nodes] if source in g else list(g.nodes):
        if root in seen:
            continue
        seen.add(root)
        on_path = {root}
        stack = [(root, iter(g.successors(root)))]
        while stack:
            name, successors = stack[-1]
            for succ in successors:
                if succ in on_path:
                    back.add((name, succ))
                elif succ not in seen:
                    seen.add(succ)
                    on_path.add(succ)
                    stack.append((succ, iter(g.successors(succ))))
                    break
            else:
                stack.pop()
                on_path.discard(name)
    return back


def _layers(g: nx.DiGraph) -> dict[str, int]:
    """Longest-path depth from START once the loops' back edges are set aside."""
    dag = nx.DiGraph(g)
    dag.remove_edges_from(back_edges(g))
    depth = dict.fromkeys(g.nodes, 0)
    for name in nx.topological_sort(dag):
        for succ in dag.successors(name):
            depth[succ] = max(depth[succ], depth[name] + 1)
    return depth
