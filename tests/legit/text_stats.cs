using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Hapnd.Projections.Contracts;

public record DocumentStats
{
    public string Title { get; init; } = "";
    public string Slug { get; init; } = "";
    public List<string> PreviousSlugs { get; init; } = [];
    public int Lines { get; init; }
    public int Words { get; init; }
    public string LongestWord { get; init; } = "";
    public string Initials { get; init; } = "";
    public int UpperCaseLetters { get; init; }
    public string LastLineReversed { get; init; } = "";
    public string LineCode { get; init; } = "L000";
    public string Summary { get; init; } = "";
}

public record RenamedData(string Title);

public record LineWrittenData(string Text);

public class TextStatsReducer : IReducer<DocumentStats>
{
    public DocumentStats Apply(DocumentStats? state, Event @event)
    {
        var doc = state ?? new DocumentStats();
        var next = @event.Type switch
        {
            "Renamed" => Rename(doc, @event.GetData<RenamedData>().Title),
            "LineWritten" => Write(doc, @event.GetData<LineWrittenData>().Text),
            _ => doc,
        };
        return next with { Summary = $"{next.Title}: {next.Lines} lines, {next.Words} words" };
    }

    private static DocumentStats Rename(DocumentStats doc, string title)
    {
        var previous = doc.Slug.Length > 0 ? [.. doc.PreviousSlugs, doc.Slug] : doc.PreviousSlugs;
        return doc with { Title = title.Trim(), Slug = Slugify(title), PreviousSlugs = previous };
    }

    private static DocumentStats Write(DocumentStats doc, string text)
    {
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var longest = doc.LongestWord;
        foreach (var word in words)
        {
            if (word.Length > longest.Length)
            {
                longest = word;
            }
        }

        var initials = new StringBuilder(doc.Initials);
        foreach (var word in words)
        {
            initials.Append(char.ToUpperInvariant(word[0]));
        }

        var lines = doc.Lines + 1;
        return doc with
        {
            Lines = lines,
            Words = doc.Words + words.Length,
            LongestWord = longest,
            Initials = initials.ToString(),
            UpperCaseLetters = doc.UpperCaseLetters + text.Count(char.IsUpper),
            LastLineReversed = new string(text.Trim().Reverse().ToArray()),
            LineCode = $"L{lines:D3}",
        };
    }

    private static string Slugify(string title)
    {
        var sb = new StringBuilder();
        var pendingDash = false;
        foreach (var c in title.Trim().ToLowerInvariant())
        {
            if (char.IsLetterOrDigit(c))
            {
                if (pendingDash && sb.Length > 0)
                {
                    sb.Append('-');
                }

                sb.Append(c);
                pendingDash = false;
            }
            else
            {
                pendingDash = true;
            }
        }

        return sb.ToString();
    }
}
