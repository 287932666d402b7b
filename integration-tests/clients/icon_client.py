"""ICON's own Python client, iconsdk, against a Meridian network address.

Run by integration-tests/tests/e2e/icon.rs as a user of the ICON network
would: `python icon_client.py http://PROXY:PORT/api/v3 HEIGHT`. Every check
raises on failure (the test reads the exit status and the output), and each
step prints one line so a failure shows how far the client got.
"""

import sys
import time

from iconsdk.builder.call_builder import CallBuilder
from iconsdk.builder.transaction_builder import TransactionBuilder
from iconsdk.exception import JSONRPCException
from iconsdk.icon_service import IconService
from iconsdk.providers.http_provider import HTTPProvider
from iconsdk.signed_transaction import SignedTransaction
from iconsdk.wallet.wallet import KeyWallet

CHAIN_SCORE = "cx0000000000000000000000000000000000000000"


def main(url: str, height: int) -> None:
    service = IconService(HTTPProvider(url))

    latest = service.get_block("latest")
    assert latest["height"] >= height, latest
    print("get_block(latest)", latest["height"])

    block = service.get_block(height - 1)
    assert block["height"] == height - 1, block
    print("get_block(height)", block["height"], block["block_hash"])

    wallet = KeyWallet.create()
    balance = service.get_balance(wallet.get_address())
    assert balance == 10**18, balance
    print("get_balance", balance)

    supply = service.get_total_supply()
    assert supply > 0, supply
    print("get_total_supply", supply)

    call = (
        CallBuilder()
        .to(CHAIN_SCORE)
        .method("getPReps")
        .params({"startRanking": "0x1", "endRanking": "0x10"})
        .build()
    )
    preps = service.call(call)
    assert len(preps["preps"]) == 1, preps
    print("getPReps", preps["preps"][0]["name"], preps["preps"][0]["p2pEndpoint"])

    # A node error reaches the client as goloop gives it: a JSON-RPC
    # error with its code (HTTP 400), raised by iconsdk.
    try:
        service.get_block(10**9)
        raise AssertionError("a block far above the head was answered")
    except JSONRPCException as e:
        assert e.rpc_code == -31004, e
        print("get_block(missing)", e.rpc_code)

    transaction = (
        TransactionBuilder()
        .from_(wallet.get_address())
        .to("hx0000000000000000000000000000000000000002")
        .value(10**16)
        .step_limit(100_000)
        .nid(1)
        .nonce(1)
        .build()
    )
    tx_hash = service.send_transaction(SignedTransaction(transaction, wallet))
    assert tx_hash.startswith("0x") and len(tx_hash) == 66, tx_hash
    print("send_transaction", tx_hash)

    # Pending (-31002) until the node mines it; the test moves its head.
    deadline = time.monotonic() + 30
    while True:
        try:
            result = service.get_transaction_result(tx_hash)
            break
        except JSONRPCException as e:
            if e.rpc_code != -31002 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert result["status"] == 1, result
    assert result["txHash"] == tx_hash, result
    print("get_transaction_result", result["blockHeight"])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
