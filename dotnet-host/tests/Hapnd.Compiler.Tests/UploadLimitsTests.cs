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

    [Theory]
    [InlineData("Reducer.cs")]
    [InlineData("src/OrderReducer.cs")]
    [InlineData("shop/src/Domain/Events/Order-Placed_1.v2.cs")]
    [InlineData("shop/Shop.csproj")]
    public void Relative_paths_of_plain_segments_are_accepted(string name) =>
        Assert.Empty(UploadLimits.Check(new Dictionary<string, string> { [name] = "class C {}" }));

    [Theory]
    [InlineData("../x.cs")]
    [InlineData("/abs.cs")]
    [InlineData("a//b.cs")]
    [InlineData(".hidden/x.cs")]
    [InlineData("src/./x.cs")]
    [InlineData("src/../x.cs")]
    [InlineData("src/.x.cs")]
    [InlineData("src/")]
    [InlineData("src\\x.cs")]
    [InlineData("my src/x.cs")]
    [InlineData("src/x.txt")]
    public void Paths_that_leave_the_folder_or_are_not_plain_are_refused(string name) =>
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string> { [name] = "class C {}" }),
            d => d.Message.Contains("file name") && d.Message.Contains("relative path"));

    [Fact]
    public void A_path_is_at_most_MaxPathLength_characters()
    {
        string PathOf(int length) => new string('d', length - "/A.cs".Length) + "/A.cs";
        Assert.Empty(UploadLimits.Check(new Dictionary<string, string> { [PathOf(UploadLimits.MaxPathLength)] = "" }));
        Assert.Contains(UploadLimits.Check(new Dictionary<string, string> { [PathOf(UploadLimits.MaxPathLength + 1)] = "" }),
            d => d.Message.Contains("file name"));
    }

    [Fact]
    public void Nested_files_compile_together_and_diagnostics_carry_their_path()
    {
        var legit = Repository.Fixtures("legit").First();
        var files = new Dictionary<string, string> { ["shop/src/Reducers/" + Path.GetFileName(legit)] = File.ReadAllText(legit) };
        var outcome = Repository.Compiler.Compile(files, Repository.Allowlist);
        Assert.True(outcome.Dll is not null, string.Join("; ", outcome.Diagnostics.Select(d => d.Code + " " + d.Message)));

        files["shop/src/Broken/Broken.cs"] = "namespace Shop;\nclass Broken { int X = }";
        outcome = Repository.Compiler.Compile(files, Repository.Allowlist);
        Assert.Null(outcome.Dll);
        Assert.Contains(outcome.Diagnostics, d => d.IsError && d.File == "shop/src/Broken/Broken.cs" && d.Line == 2);
    }
}
