// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.26;

/// @title DevSwitch: a call whose outcome its owner can flip.
/// @notice The tests approve a call to poke() while the switch is on, then
/// turn it off after daoguard has re-simulated and signed the transaction
/// and before it is sent: the transaction reverts on chain with a reason,
/// which is what daoguard must record.
contract DevSwitch {
    address public immutable owner;
    bool public off;
    uint256 public pokes;

    constructor() {
        owner = msg.sender;
    }

    function set(bool isOff) external {
        require(msg.sender == owner, "not the owner");
        off = isOff;
    }

    function poke() external {
        require(!off, "switched off");
        pokes++;
    }
}
