namespace Hapnd.Compiler.Tests;

public sealed class AllowlistTests
{
    private static readonly Allowlist List = Allowlist.Parse("""
        group g
        why test
        type System.DateTime
        namespace System.Collections.Generic
        member System.Globalization.CultureInfo.InvariantCulture
        deny System.DateTime.Now : use the event's time
        deny *.GetHashCode : compare values
        emitted System.Type.GetTypeFromHandle
        emitted System.Object.GetHashCode
        internal System.Runtime.CompilerServices.Unsafe.As
        hint System.IO : no files
        """);

    [Fact]
    public void A_type_rule_covers_members_and_nested_types_and_a_namespace_its_types_only()
    {
        Assert.Null(List.CheckType("System.DateTime", Gate.Source));
        Assert.Null(List.CheckMember("System.DateTime", ["AddDays"], Gate.Source));
        Assert.Null(List.CheckType("System.Collections.Generic.List`1+Enumerator", Gate.Source));
        Assert.NotNull(List.CheckType("System.Collections.Generic.Sub.Thing", Gate.Source));
        Assert.NotNull(List.CheckType("System.Collections.Concurrent.ConcurrentBag`1", Gate.Source));
    }

    [Fact]
    public void A_member_rule_allows_only_that_member()
    {
        Assert.Null(List.CheckType("System.Globalization.CultureInfo", Gate.Source));
        Assert.Null(List.CheckMember("System.Globalization.CultureInfo", ["get_InvariantCulture", "InvariantCulture"], Gate.Source));
        Assert.NotNull(List.CheckMember("System.Globalization.CultureInfo", ["CurrentCulture"], Gate.Source));
    }

    [Fact]
    public void Deny_wins_and_says_what_to_do_instead()
    {
        var now = List.CheckMember("System.DateTime", ["get_Now", "Now"], Gate.Metadata);
        Assert.Equal(new Refusal("System.DateTime.Now", "use the event's time"), now);
        Assert.Equal("compare values", List.CheckMember("System.Collections.Generic.EqualityComparer`1", ["GetHashCode"], Gate.Source)?.Reason);
    }

    [Fact]
    public void Emitted_and_internal_rules_widen_only_the_metadata_gate()
    {
        Assert.NotNull(List.CheckMember("System.Type", ["GetTypeFromHandle"], Gate.Source));
        Assert.Null(List.CheckMember("System.Type", ["GetTypeFromHandle"], Gate.Metadata));
        Assert.NotNull(List.CheckMember("System.Object", ["GetHashCode"], Gate.Source));
        Assert.Null(List.CheckMember("System.Object", ["GetHashCode"], Gate.Metadata));
        Assert.NotNull(List.CheckMember("System.Runtime.CompilerServices.Unsafe", ["As"], Gate.Metadata));
        Assert.Null(List.CheckMember("System.Runtime.CompilerServices.Unsafe", ["As"], Gate.Metadata, inPrivateImplementation: true));
        Assert.True(List.IsInternalOnly("System.Runtime.CompilerServices.Unsafe", ["As"]));
    }

    [Fact]
    public void A_refusal_names_the_symbol_as_users_write_it_with_the_closest_hint()
    {
        var refusal = List.CheckType("System.IO.File", Gate.Source);
        Assert.Equal("System.IO.File", refusal?.Symbol);
        Assert.Contains("no files", refusal?.Reason);
        Assert.Equal("System.Collections.Generic.List.Enumerator", Allowlist.Display("System.Collections.Generic.List`1+Enumerator"));
    }

    [Theory]
    [InlineData("type System.String", "group")]
    [InlineData("group g\ntype System.String", "group that says why")]
    [InlineData("group g\nwhy w\nallow System.String", "unknown rule")]
    [InlineData("group g\nwhy w\ndeny System.Random", "INSTEAD")]
    [InlineData("group g\nwhy w\ntype System.String extra", "exactly one symbol")]
    public void A_malformed_allowlist_is_refused_naming_the_line(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => Allowlist.Parse(text));
        Assert.Contains(expected, error.Message);
        Assert.Contains("allowlist line", error.Message);
    }

    [Fact]
    public void The_shipped_allowlist_parses()
    {
        Assert.Equal(64, Repository.Allowlist.Hash.Length);
        Assert.Null(Repository.Allowlist.CheckType("System.String", Gate.Source));
        Assert.NotNull(Repository.Allowlist.CheckType("System.IO.File", Gate.Source));
    }
}
