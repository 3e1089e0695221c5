import pytest

from cfedit.core.graph import CausalGraph
from cfedit.errors import GraphError

BACKDOOR = "D <-> C; D -> B; C -> B"
CG_TEXT = """<NODES>
D
C
B

<EDGES>
D -> C
C -> B
D <-> B
"""


def test_one_line_form_structure():
    g = CausalGraph.parse(BACKDOOR)
    assert g.nodes == ("D", "C", "B")
    assert g.parents("B") == ("D", "C") and g.parents("D") == ()
    assert g.spouses("D") == ("C",)
    assert g.topological_order() == ("D", "C", "B")


def test_cg_format_round_trip_and_frontdoor_structure():
    g = CausalGraph.parse(CG_TEXT)
    assert g.directed == (("D", "C"), ("C", "B")) and g.bidirected == (("D", "B"),)
    assert CausalGraph.parse(g.to_cg()) == g
    assert CausalGraph.parse(g.to_line()) == g
    assert g.c_components() == (("D", "B"), ("C",))


def test_descendants_ancestors_by_hand():
    # A -> B -> C, A -> D, E isolated, B <-> E
    g = CausalGraph.parse("A -> B; B -> C; A -> D; B <-> E; E")
    assert g.descendants(["B"]) == {"B", "C"}
    assert g.descendants(["A"]) == {"A", "B", "C", "D"}
    assert g.ancestors(["C"]) == {"A", "B", "C"}
    assert g.non_descendants(["B"]) == ("A", "D", "E")
    assert g.c_components() == (("A",), ("B", "E"), ("C",), ("D",))


def test_c_components_chain_of_bidirected_edges():
    g = CausalGraph.parse("X <-> Y; Y <-> Z; Z -> W; X -> W")
    assert g.c_components() == (("X", "Y", "Z"), ("W",))
    assert g.bidirected_cliques() == (("X", "Y"), ("Y", "Z"))


def test_do_removes_incoming_edges_only_and_returns_new_graph():
    g = CausalGraph.parse(BACKDOOR)
    h = g.do(["C"])
    assert h.directed == (("D", "B"), ("C", "B")) and h.bidirected == ()
    assert g.bidirected == (("D", "C"),)  # original untouched
    assert g.do(["B"]).directed == () and g.do(["B"]).bidirected == (("D", "C"),)


def test_cycle_is_named():
    with pytest.raises(GraphError, match=r"cycle: (A -> B -> C -> A|B -> C -> A -> B|C -> A -> B -> C)"):
        CausalGraph.parse("A -> B; B -> C; C -> A")


def test_malformed_cg_line_number():
    bad = CG_TEXT.replace("C -> B", "C => B")
    with pytest.raises(GraphError, match="line 8"):
        CausalGraph.parse(bad)


def test_unknown_node_in_cg_edges_and_self_loop():
    with pytest.raises(GraphError, match="line 6: edge names 'Z'"):
        CausalGraph.parse("<NODES>\nA\nB\n\n<EDGES>\nA -> Z\n")
    with pytest.raises(GraphError, match="self loop"):
        CausalGraph.parse("A -> A")
    with pytest.raises(GraphError, match="unknown factor 'Q'"):
        CausalGraph.parse(BACKDOOR).do(["Q"])


def test_load_missing_file(tmp_path):
    with pytest.raises(GraphError, match="does not exist"):
        CausalGraph.load(tmp_path / "nope.cg")


# ---------------------------------------------------------------- malformed graph files
@pytest.mark.parametrize("text", ["", "   \n\n\t", "# only a comment\n", "<NODES>\n<EDGES>\n", ";;"])
def test_empty_graphs_are_refused(tmp_path, text):
    (tmp_path / "g.cg").write_text(text)
    with pytest.raises(GraphError, match="declares no factors"):
        CausalGraph.load(tmp_path / "g.cg")
    with pytest.raises(GraphError, match="at least one factor"):
        CausalGraph((), ())


@pytest.mark.parametrize("data,match", [(b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "not UTF-8 text"),
                                        (b"\x00" * 64, "NUL bytes")])
def test_binary_graph_files_are_refused(tmp_path, data, match):
    (tmp_path / "g.cg").write_bytes(data)
    with pytest.raises(GraphError, match=match):
        CausalGraph.load(tmp_path / "g.cg")


def test_graph_paths_that_are_not_regular_files(tmp_path):
    with pytest.raises(GraphError, match="graph file /dev/null is not a regular file"):
        CausalGraph.load("/dev/null")
    with pytest.raises(GraphError, match="is a folder"):
        CausalGraph.load(tmp_path)


def test_long_graph_text_is_cut_in_messages(tmp_path):
    nodes = [f"X{i}" for i in range(100_000)]
    for text in ["; ".join(nodes) + "; X0 -> ?", " -> ".join(nodes) + " -> X0", "X0 -> " + "Y" * 100_000 + "!"]:
        with pytest.raises(GraphError) as e:
            CausalGraph.parse(text)
        assert len(str(e.value)) < 800
    with pytest.raises(GraphError) as e:
        CausalGraph.parse("; ".join(f"{a} -> {b}" for a, b in zip(nodes, nodes[1:])) + "; X99999 -> X0")
    assert "cycle" in str(e.value) and len(str(e.value)) < 800
    with pytest.raises(GraphError) as e:
        CausalGraph.parse("; ".join(nodes)).parents("Z")
    assert "unknown factor 'Z'" in str(e.value) and len(str(e.value)) < 800
