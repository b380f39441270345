namespace Chain.Consistency.Tests;

public class SetCheckerTests
{
    [Fact]
    public void AllAcknowledgedPresentIsValid()
    {
        var result = SetChecker.Check(["a", "b"], ["c", "d"], ["a", "b", "c"]);
        Assert.True(result.Valid);
        Assert.Empty(result.Lost);
        Assert.Empty(result.Invented);
        Assert.Equal(["c"], result.RecoveredIndeterminate);
    }

    [Fact]
    public void ReportsLostAcknowledgedInserts()
    {
        var result = SetChecker.Check(["a", "b", "c"], [], ["b"]);
        Assert.False(result.Valid);
        Assert.Equal(["a", "c"], result.Lost);
        Assert.Empty(result.Invented);
    }

    [Fact]
    public void ReportsInventedElements()
    {
        var result = SetChecker.Check(["a"], ["b"], ["a", "b", "z"]);
        Assert.False(result.Valid);
        Assert.Empty(result.Lost);
        Assert.Equal(["z"], result.Invented);
    }

    [Fact]
    public void IndeterminateMissingIsFine()
    {
        var result = SetChecker.Check([], ["x", "y"], []);
        Assert.True(result.Valid);
        Assert.Empty(result.RecoveredIndeterminate);
    }
}
