// The small embedded corpus the synthetic vocabularies are trained on: English prose, questions and quotes,
// numbers and dates, code (Swift, Python, Go with tab indentation, JSON, shell, SQL) and a line or two in
// many languages and scripts, plus emoji and symbols. Written for this project; about 6 KB.

enum SyntheticCorpus {
    static let text: String = #"""
The small lighthouse stood at the edge of the harbour, and every evening the keeper climbed the narrow stairs to light the lamp. Ships that passed in the night could see the beam from far away, and the sailors knew that they were close to home.
When the storm arrived in late October, the wind tore shingles from the roofs and the waves rose higher than anyone could remember. The keeper stayed awake through the whole night, watching the water and writing short notes in his logbook.
In the morning the town was quiet again. Children walked along the beach looking for shells, fishermen repaired their nets, and the baker opened his shop a little earlier than usual because everyone wanted fresh bread and hot coffee.
A good tokenizer splits text into pieces that appear often: common words become single tokens, while rare words are broken into smaller parts. This makes the vocabulary compact and still able to represent any string, even one it has never seen before.
Questions people ask: What time is it? How much does it cost? Where is the nearest station? Why does the model repeat itself? Is this the right answer, or should we try again?
She said, "I don't think we're ready yet, but we'll see." He replied: 'It's fine; they've already started, and you'd better hurry!'
The meeting is on 2024-03-15 at 09:30, room 12B. Tickets cost $45.99 (or 40 EUR), and about 1,250 people have registered so far - roughly 37.5% more than last year.

func greet(name: String, times: Int = 3) -> [String] {
    var lines: [String] = []
    for index in 0..<times {
        lines.append("Hello, \(name)! This is message number \(index + 1).")
    }
    return lines
}

struct Point: Equatable {
    var x: Double
    var y: Double
    func distance(to other: Point) -> Double {
        let dx = x - other.x, dy = y - other.y
        return (dx * dx + dy * dy).squareRoot()
    }
}

def fibonacci(n):
    """Return the first n Fibonacci numbers."""
    result = [0, 1]
    while len(result) < n:
        result.append(result[-1] + result[-2])
    return result[:n]

if __name__ == "__main__":
    for value in fibonacci(10):
        print(f"value = {value}")

package main

import "fmt"

func main() {
	total := 0
	for i := 1; i <= 100; i++ {
		if i%3 == 0 || i%5 == 0 {
			total += i
		}
	}
	fmt.Println("sum:", total)
}

{"name": "grok-tiny", "layers": 4, "experts": 8, "top_k": 2, "vocab_size": 512, "tags": ["test", "cpu", "moe"]}
$ swift build -c release && ./.build/release/grok run --model model.gguf --prompt "Hello"
SELECT id, name, created_at FROM users WHERE active = 1 ORDER BY created_at DESC LIMIT 20;
x = (a + b) * c / 2; y = x ** 2 - 4 * a * c; if (x >= y && y != 0) { return x % y; }

Le petit phare se trouvait au bord du port. Chaque soir, le gardien montait l'escalier étroit pour allumer la lampe, et les marins savaient qu'ils étaient presque arrivés.
Der Leuchtturm stand am Rand des Hafens. Während des Sturms blieb der Wärter die ganze Nacht wach und schrieb kurze Notizen in sein Logbuch. Über die Brücke fahren schöne große Züge.
El faro estaba al borde del puerto. Los niños caminaban por la playa buscando conchas, y el panadero abrió su tienda más temprano que de costumbre. ¿Dónde está la estación? ¡Qué día tan bonito!
O farol ficava na beira do porto, e os pescadores consertavam as suas redes enquanto as crianças brincavam na areia. Não há pão sem trabalho.
Il faro si trovava sul bordo del porto. Ogni sera il guardiano saliva le scale strette per accendere la lampada. Perché è così difficile?
Маленький маяк стоял на краю гавани. Каждый вечер смотритель поднимался по узкой лестнице, чтобы зажечь лампу. Спасибо, до свидания!
Ο μικρός φάρος βρισκόταν στην άκρη του λιμανιού. Κάθε βράδυ ο φύλακας ανέβαινε τη στενή σκάλα. Καλημέρα σας!
Mała latarnia morska stała na skraju portu. Dzieci spacerowały po plaży, szukając muszelek. Dziękuję bardzo, żółć i źdźbło.
Küçük deniz feneri limanın kenarında duruyordu. Fırtına geldiğinde bekçi bütün gece uyanık kaldı. Teşekkür ederim!
Ngọn hải đăng nhỏ đứng ở rìa bến cảng. Mỗi buổi tối, người gác đèn leo lên cầu thang hẹp để thắp đèn. Cảm ơn bạn rất nhiều.
小灯塔矗立在港口的边缘。每天晚上，守塔人都会爬上狭窄的楼梯去点亮灯。水手们看到灯光，就知道自己快到家了。今天天气很好，我们去海边散步吧。
小さな灯台は港の端に立っていました。毎晩、灯台守は狭い階段を上ってランプを灯しました。ありがとうございます。東京は今日も晴れです。
작은 등대는 항구의 가장자리에 서 있었습니다. 매일 저녁 등대지기는 좁은 계단을 올라가 등불을 켰습니다. 감사합니다, 안녕하세요!
كانت المنارة الصغيرة تقف على حافة الميناء. كل مساء كان الحارس يصعد الدرج الضيق ليضيء المصباح. شكرا جزيلا.
המגדלור הקטן עמד בקצה הנמל. בכל ערב עלה השומר במדרגות הצרות כדי להדליק את המנורה. תודה רבה!
छोटा प्रकाशस्तंभ बंदरगाह के किनारे खड़ा था। हर शाम रखवाला संकरी सीढ़ियाँ चढ़कर दीपक जलाता था। धन्यवाद!
ประภาคารเล็ก ๆ ตั้งอยู่ริมท่าเรือ ทุกเย็นผู้ดูแลจะปีนบันไดแคบ ๆ ขึ้นไปจุดตะเกียง ขอบคุณมาก
Emoji and symbols: 🙂 😀 🎉 👍🏽 ❤️ 🚀 ✨ → ← ≤ ≥ ≠ ± × ÷ ∑ ∫ √ ∞ π ° € £ ¥ © ® ™ … “quoted” ‘single’ — dash – en dash.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!
Finally, the keeper closed his logbook, looked at the calm sea, and smiled. Tomorrow there would be more ships, more weather, and more stories to write down.
"""#
}
