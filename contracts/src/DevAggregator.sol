// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.26;

/// @title DevAggregator: a price feed with Chainlink's AggregatorV3Interface
/// read side, whose deployer sets each round.
/// @notice The dev chain's on-chain price source, and the tests' way to
/// make a feed stale (an old updatedAt), incomplete (answeredInRound behind
/// roundId), negative or deviating — everything daoguard must refuse.
contract DevAggregator {
    uint8 public immutable decimals;
    string public description;
    address public immutable updater;

    uint80 private roundId;
    int256 private answer;
    uint256 private startedAt;
    uint256 private updatedAt;
    uint80 private answeredInRound;

    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
        updater = msg.sender;
    }

    function version() external pure returns (uint256) {
        return 4;
    }

    /// @notice Publishes a round exactly as given.
    function setRoundData(uint80 roundId_, int256 answer_, uint256 startedAt_, uint256 updatedAt_, uint80 answeredInRound_) external {
        require(msg.sender == updater, "DevAggregator: not the updater");
        roundId = roundId_;
        answer = answer_;
        startedAt = startedAt_;
        updatedAt = updatedAt_;
        answeredInRound = answeredInRound_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (roundId, answer, startedAt, updatedAt, answeredInRound);
    }
}
