namespace Hapnd.Compiler.Tests;

public sealed class UploadLimitsTests
{
    [Fact]
    public void Deep_nesting_is_refused_before_parsing_but_brackets_in_strings_and_comments_do_not_count()
    {
        var deep = "class C { int X = " + new string('(', 200) + "1" + new string(')', 200) + "; }";
        Assert.NotNull(UploadLimits.DeepestNesting(deep));
        var quoted = "class C { string S = \"" + new string('(', 500) + "\"; /* " + new string('{', 500) + " */ }\n// " + new string('[', 500);
        Assert.Null(UploadLimits.DeepestNesting(quoted));
    }

    [Fact]
    public void File_names_counts_and_sizes_are_bounded()
    {
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string>()), d => d.Message.Contains("no files"));
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string> { ["../etc/passwd.cs"] = "" }), d => d.Message.Contains("file name"));
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string> { ["a.dll"] = "" }), d => d.Message.Contains("file name"));
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string> { ["Big.cs"] = new string('x', UploadLimits.MaxFileBytes + 1) }),
            d => d.Message.Contains("bytes"));
        var many = Enumerable.Range(0, UploadLimits.MaxFiles + 1).ToDictionary(i => $"F{i}.cs", _ => "");
        Assert.Contains(UploadLimits.Check(many), d => d.Message.Contains("files"));
        Assert.Empty(UploadLimits.Check(new Dictionary<string, string> { ["Reducer.cs"] = "class C {}", ["Reducer.csproj"] = "<Project/>" }));
    }
}
