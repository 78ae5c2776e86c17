"""Representational similarity: linear CKA between layers and models (``cka``)."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Layer similarity (CKA)")
runs = shared.need_runs()
tables = shared.group_page("cka", runs)
cka = tables["cka"]
st.caption(
    "Linear CKA (Kornblith et al. 2019) of word vectors on a fixed sentence sample: biased "
    "(HSIC_0) and unbiased (debiased HSIC, Song et al. 2012). The random baseline is CKA between "
    "two independent Gaussian matrices of the same shape: the unbiased estimator scatters around "
    "0, the biased one shows its small-sample inflation."
)
shared.show_figures(shared.figures_of("cka", tables), key="cka")

st.subheader("Random baseline")
random = cka[cka["control"] == "random"]
if not random.empty:
    st.dataframe(
        random.pivot_table(
            index=["n", "d", "d_b"], columns="metric", values="value", aggfunc=["mean", "std"]
        ),
    )
st.subheader("CKA with the same layer of the reference")
real = cka[cka["control"] == "task"]
same = real[(real["layer"] == real["layer_b"])]
own = same["model_name"] if "model_name" in same else same["model"]
across = same[own != same["model_b"]]
if not across.empty:
    st.dataframe(
        across.pivot_table(index=["model", "metric"], columns="layer", values="value").style.format(
            "{:.3f}"
        )
    )
shared.table_download(cka, "cka", key="cka")
