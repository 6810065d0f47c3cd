"""A client with a CRDT, as a JupyterLab tab is one: a pycrdt copy of the notebook
document that edits as JupyterLab's shared model does and turns each edit into
the `v1.DocumentUpdated` it pushes."""

from __future__ import annotations

import uuid
from typing import Any

import pycrdt as y

from anode_ext.log import Store
from anode_ext.log import catalogue as ev
from anode_ext.log.document import decode_update, encode_update


class Browser:
    def __init__(self, store: Store, client_id: int | None = None) -> None:
        self.doc: y.Doc[Any] = y.Doc() if client_id is None else y.Doc(client_id=client_id)
        self.head = 0
        self.pull(store)

    @property
    def cells(self) -> y.Array[Any]:
        return self.doc.get("cells", type=y.Array)

    def pull(self, store: Store) -> None:
        """Apply the updates of every event since the last pull, as the sync socket delivers them."""
        for env in store.events(self.head):
            if isinstance(env.args, ev.DocumentUpdated | ev.CellSourceEdited):
                self.doc.apply_update(decode_update(env.args.update))
            self.head = env.seq

    def edit(self, change: Any) -> dict[str, Any]:
        """Run `change(self)` in one transaction: the push that carries it."""
        before = self.doc.get_state()
        with self.doc.transaction():
            change(self)
        update = self.doc.get_update(before)
        return {
            "id": uuid.uuid4().hex,
            "name": "v1.DocumentUpdated",
            "args": {"update": encode_update(update)},
        }

    # -- what JupyterLab's shared model does --------------------------------------
    def ids(self) -> list[str]:
        return [str(c["id"]) for c in self.cells]

    def index(self, cell_id: str) -> int:
        return self.ids().index(cell_id)

    def type_text(self, cell_id: str, at: int, text: str) -> dict[str, Any]:
        def change(b: Browser) -> None:
            source = b.cells[b.index(cell_id)]["source"]
            source.insert(len(str(source)[:at].encode()), text)

        return self.edit(change)

    def insert_cell(
        self, index: int, cell_id: str, source: str = "", cell_type: str = "code"
    ) -> dict[str, Any]:
        def change(b: Browser) -> None:
            cell: dict[str, Any] = {
                "id": cell_id,
                "cell_type": cell_type,
                "source": y.Text(source),
                "metadata": y.Map({}),
            }
            if cell_type == "code":
                cell.update(outputs=y.Array(), execution_count=None, execution_state="idle")
            b.cells.insert(index, y.Map(cell))

        return self.edit(change)

    def move_cell(self, cell_id: str, to: int) -> dict[str, Any]:
        """As @jupyter/ydoc moves: delete the map, insert a copy of it."""

        def change(b: Browser) -> None:
            i = b.index(cell_id)
            content = b.cells[i].to_py()
            del b.cells[i]
            content["source"] = y.Text(content["source"])
            content["metadata"] = y.Map(content.get("metadata") or {})
            if "outputs" in content:
                outs = []
                for o in content["outputs"]:
                    if o.get("output_type") == "stream":
                        o = {**o, "text": y.Text(o["text"])}
                    outs.append(y.Map(o))
                content["outputs"] = y.Array(outs)
            b.cells.insert(to, y.Map(content))

        return self.edit(change)

    def delete_cell(self, cell_id: str) -> dict[str, Any]:
        return self.edit(lambda b: b.cells.__delitem__(b.index(cell_id)))

    def set_metadata(self, cell_id: str, key: str, value: Any) -> dict[str, Any]:
        def change(b: Browser) -> None:
            meta = b.cells[b.index(cell_id)]["metadata"]
            if value is None:
                if key in meta:
                    del meta[key]
            else:
                meta[key] = value

        return self.edit(change)

    def set_type(self, cell_id: str, cell_type: str) -> dict[str, Any]:
        return self.edit(lambda b: b.cells[b.index(cell_id)].__setitem__("cell_type", cell_type))
