using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record EditorState
{
    public List<string> Done { get; init; } = [];
    public List<string> Undone { get; init; } = [];
    public string Text { get; init; } = "";
    public int Undos { get; init; }
    public int Redos { get; init; }
    public List<string> Vocabulary { get; init; } = [];
}

public record TypedData(string Text);

public record MacroData(List<string> Steps);

public class EditorReducer : IReducer<EditorState>
{
    public EditorState Apply(EditorState? state, Event @event)
    {
        var s = state ?? new EditorState();

        // Lists are stored bottom-first; work on them as stacks.
        var done = new Stack<string>(s.Done);
        var undone = new Stack<string>(s.Undone);
        var vocabulary = new HashSet<string>(s.Vocabulary);
        var undos = s.Undos;
        var redos = s.Redos;

        void Type(string piece)
        {
            done.Push(piece);
            undone.Clear();
            var word = piece.Trim();
            if (word.Length > 0)
            {
                vocabulary.Add(word);
            }
        }

        switch (@event.Type)
        {
            case "Typed":
                Type(@event.GetData<TypedData>().Text);
                break;
            case "Macro":
                var queue = new Queue<string>(@event.GetData<MacroData>().Steps);
                while (queue.TryDequeue(out var step))
                {
                    Type(step);
                }

                break;
            case "Undo":
                undos++;
                if (done.TryPop(out var last))
                {
                    undone.Push(last);
                }

                break;
            case "Redo":
                redos++;
                if (undone.TryPop(out var again))
                {
                    done.Push(again);
                }

                break;
            default:
                return s;
        }

        var bottomFirst = done.Reverse().ToList();
        var words = vocabulary.ToList();
        words.Sort(string.CompareOrdinal);
        return new EditorState
        {
            Done = bottomFirst,
            Undone = undone.Reverse().ToList(),
            Text = string.Concat(bottomFirst),
            Undos = undos,
            Redos = redos,
            Vocabulary = words,
        };
    }
}
