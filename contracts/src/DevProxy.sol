// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.26;

/// @title DevProxy: a minimal ERC-1967 upgradeable proxy for the tests.
/// @notice The admin can swap the implementation at any time: exactly what
/// daoguard's code binding must catch between approval and execution (an
/// approved call that would run other code than the approvers saw).
contract DevProxy {
    // bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)
    bytes32 internal constant IMPLEMENTATION_SLOT = 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;
    address public immutable admin;

    event Upgraded(address indexed implementation);

    constructor(address implementation) {
        admin = msg.sender;
        _set(implementation);
    }

    function upgradeTo(address implementation) external {
        require(msg.sender == admin, "DevProxy: not the admin");
        _set(implementation);
    }

    function _set(address implementation) internal {
        assembly {
            sstore(IMPLEMENTATION_SLOT, implementation)
        }
        emit Upgraded(implementation);
    }

    fallback() external payable {
        assembly {
            let impl := sload(IMPLEMENTATION_SLOT)
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), impl, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }
}
