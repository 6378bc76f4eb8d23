namespace Hapnd.Compiler;

/// <summary>
/// What an upload may be, checked before anything is parsed: Roslyn is not built for hostile input (deeply nested
/// expressions exhaust its stack), so the shape is bounded first, cheaply.
/// </summary>
internal static class UploadLimits
{
    public const int MaxFiles = 64;
    public const int MaxFileBytes = 512 * 1024;
    public const int MaxTotalBytes = 1024 * 1024;
    /// <summary>Longest file name, a relative path such as <c>src/Orders/OrderReducer.cs</c>.</summary>
    public const int MaxPathLength = 200;

    /// <summary>Deepest nesting of brackets, parentheses and braces; real code stays far below.</summary>
    public const int MaxNestingDepth = 128;

    /// <summary>Checks every limit; returns the problems (empty when the upload may be compiled).</summary>
    public static List<CompileDiagnostic> Check(IReadOnlyDictionary<string, string> files)
    {
        var problems = new List<CompileDiagnostic>();
        if (files.Count == 0)
        {
            problems.Add(CompileDiagnostic.Error(Codes.Limits, "the upload has no files: send at least one .cs file"));
        }
        if (files.Count > MaxFiles)
        {
            problems.Add(CompileDiagnostic.Error(Codes.Limits, $"the upload has {files.Count} files; at most {MaxFiles} are allowed"));
        }
        long total = 0;
        foreach (var (name, text) in files)
        {
            if (!IsValidPath(name))
            {
                problems.Add(CompileDiagnostic.Error(Codes.Limits,
                    $"the file name '{Shorten(name)}' is not allowed: use a relative path of at most {MaxPathLength} characters, "
                    + "'/'-separated segments of letters, digits, '_', '-' or '.' (none empty or starting with '.'), ending in .cs or .csproj"));
                continue;
            }
            var bytes = System.Text.Encoding.UTF8.GetByteCount(text);
            total += bytes;
            if (bytes > MaxFileBytes)
            {
                problems.Add(CompileDiagnostic.At(name, 1, 1, Codes.Limits,
                    $"the file is {bytes} bytes; at most {MaxFileBytes} are allowed"));
                continue;
            }
            if (name.EndsWith(".cs", StringComparison.Ordinal) && DeepestNesting(text) is { } deep)
            {
                problems.Add(CompileDiagnostic.At(name, deep.Line, deep.Column, Codes.Limits,
                    $"nesting deeper than {MaxNestingDepth} levels of (), [] or {{}} is not allowed: split the expression"));
            }
        }
        if (total > MaxTotalBytes)
        {
            problems.Add(CompileDiagnostic.Error(Codes.Limits, $"the upload is {total} bytes; at most {MaxTotalBytes} are allowed"));
        }
        return problems;
    }

    /// <summary>
    /// A relative path of '/'-separated segments, so an archive's folders survive (the server sends
    /// <c>src/OrderReducer.cs</c> as it found it); it is only ever a syntax tree's path, never opened. No segment is
    /// empty or starts with '.', which also rules out <c>.</c> and <c>..</c>. The server checks the same rule first
    /// (server/src/code/archive.rs <c>is_valid_source_path</c>).
    /// </summary>
    private static bool IsValidPath(string path) =>
        path.Length is > 0 and <= MaxPathLength
        && (path.EndsWith(".cs", StringComparison.Ordinal) || path.EndsWith(".csproj", StringComparison.Ordinal))
        && path.Split('/').All(IsValidSegment);

    private static bool IsValidSegment(string segment) =>
        segment.Length > 0
        && !segment.StartsWith('.')
        && segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    private static string Shorten(string name) => name.Length <= 60 ? name : name[..60] + "…";

    /// <summary>
    /// Where nesting first goes past the limit, or null. Comments, strings and character literals are skipped, so
    /// brackets inside them do not count; an interpolation's holes are counted as code would be.
    /// </summary>
    internal static (int Line, int Column)? DeepestNesting(string text)
    {
        var depth = 0;
        int line = 1, column = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            column++;
            if (c == '\n')
            {
                line++;
                column = 0;
                continue;
            }
            var next = i + 1 < text.Length ? text[i + 1] : '\0';
            if (c == '/' && next == '/')
            {
                while (i + 1 < text.Length && text[i + 1] != '\n')
                {
                    i++;
                }
                continue;
            }
            if (c == '/' && next == '*')
            {
                i += 2;
                while (i < text.Length && !(text[i] == '*' && i + 1 < text.Length && text[i + 1] == '/'))
                {
                    if (text[i] == '\n')
                    {
                        line++;
                        column = 0;
                    }
                    i++;
                }
                i++;
                continue;
            }
            if (c is '"' or '\'')
            {
                // Skip to the closing quote; a backslash escapes in regular literals. Verbatim and raw literals end at
                // the first matching quote too, which only shortens what is skipped: brackets after it are counted.
                var verbatim = i > 0 && text[i - 1] == '@';
                i++;
                while (i < text.Length && text[i] != c && text[i] != '\n')
                {
                    if (text[i] == '\\' && !verbatim)
                    {
                        i++;
                    }
                    i++;
                }
                continue;
            }
            if (c is '(' or '[' or '{')
            {
                depth++;
                if (depth > MaxNestingDepth)
                {
                    return (line, column);
                }
            }
            else if (c is ')' or ']' or '}')
            {
                depth = Math.Max(0, depth - 1);
            }
        }
        return null;
    }
}
