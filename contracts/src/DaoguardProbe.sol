// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.26;

interface IERC20View {
    function balanceOf(address owner) external view returns (uint256);
    function allowance(address owner, address spender) external view returns (uint256);
}

/// @title DaoguardProbe: runs one transaction as the account that would
/// send it, and reports what it changed.
/// @notice daoguard never deploys it. A simulation places its runtime code
/// with an eth_call state override: at the account itself for a hot wallet
/// (which has no code of its own), or at a scratch address that a Safe
/// delegatecalls through its own simulateAndRevert, so that the call runs
/// with the Safe's address, storage and balance, exactly as execTransaction
/// would run it. Nothing it does is ever committed: eth_call discards it.
contract DaoguardProbe {
    /// @param to the target; value the native value; data the calldata;
    /// operation 0 call, 1 delegatecall (Safe only).
    /// @param tokens the ERC-20s whose balances to watch (native is always watched).
    /// @param allowanceTokens/spenders pairs whose allowance to read afterwards.
    /// @return success whether the call succeeded; ret its return or revert data;
    /// before/afterwards the balances [native, tokens...]; allowances the
    /// allowances afterwards, one per pair.
    function probe(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation,
        address[] calldata tokens,
        address[] calldata allowanceTokens,
        address[] calldata spenders
    )
        external
        returns (bool success, bytes memory ret, uint256[] memory before, uint256[] memory afterwards, uint256[] memory allowances)
    {
        require(allowanceTokens.length == spenders.length, "probe: pairs");
        before = balances(tokens);
        if (operation == 1) {
            (success, ret) = to.delegatecall(data);
        } else {
            (success, ret) = to.call{value: value}(data);
        }
        afterwards = balances(tokens);
        allowances = new uint256[](spenders.length);
        for (uint256 i = 0; i < spenders.length; i++) {
            allowances[i] = IERC20View(allowanceTokens[i]).allowance(address(this), spenders[i]);
        }
    }

    function balances(address[] calldata tokens) internal view returns (uint256[] memory b) {
        b = new uint256[](tokens.length + 1);
        b[0] = address(this).balance;
        for (uint256 i = 0; i < tokens.length; i++) {
            b[i + 1] = IERC20View(tokens[i]).balanceOf(address(this));
        }
    }

    /// A wallet accepts whatever is sent to it, as an account without code does.
    receive() external payable {}
}
